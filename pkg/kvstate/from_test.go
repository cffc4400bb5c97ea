package kvstate_test

import (
	"context"
	"testing"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
)

// The From variants start from a record the caller holds (a watch's copy);
// a stale copy must cost a retry, never a lost write or a reused epoch.
func TestAdvanceEpochFromStaleGuess(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	m1, f1, err := st.AdvanceEpochFrom(ctx, "j1", nil, 0, func(m *kvstate.MasterRecord) { m.Node = "a" })
	if err != nil || m1.Epoch != 1 {
		t.Fatalf("first advance from nothing: %+v %v", m1, err)
	}
	for _, tc := range []struct {
		name string
		cur  *kvstate.MasterRecord
		rev  uint64
		want uint64
	}{
		{"current copy", m1, f1.Rev(), 2},
		{"stale copy", m1, f1.Rev(), 3},
		{"believed absent", nil, 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, err := st.AdvanceEpochFrom(ctx, "j1", tc.cur, tc.rev, func(m *kvstate.MasterRecord) { m.Node = "b" })
			if err != nil || m.Epoch != tc.want {
				t.Fatalf("advance: epoch %d, %v; want epoch %d", m.Epoch, err, tc.want)
			}
			got, _, err := st.GetMaster(ctx, "j1")
			if err != nil || got.Epoch != tc.want || got.Node != "b" {
				t.Fatalf("stored %+v %v", got, err)
			}
		})
	}
	if m1.Epoch != 1 || m1.Node != "a" {
		t.Fatalf("the caller's copy was modified: %+v", m1)
	}
}

func TestUpdateJobFromStaleCopy(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	job := &api.Job{ID: "j1", Type: "counter", State: api.StateCreated}
	rev, err := st.CreateJob(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	j2, rev2, err := st.UpdateJobFrom(ctx, job, rev, func(j *api.Job) error { j.Restarts = 1; return nil })
	if err != nil || j2.Restarts != 1 || rev2 <= rev {
		t.Fatalf("update from current copy: %+v %d %v", j2, rev2, err)
	}
	if job.Restarts != 0 {
		t.Fatal("the caller's copy was modified")
	}
	// job at rev is stale now: fn must run again on the stored record.
	j3, _, err := st.UpdateJobFrom(ctx, job, rev, func(j *api.Job) error { j.Restarts++; return nil })
	if err != nil || j3.Restarts != 2 {
		t.Fatalf("update from stale copy: %+v %v, want restarts 2", j3, err)
	}
	got, _, err := st.GetJob(ctx, "j1")
	if err != nil || got.Restarts != 2 {
		t.Fatalf("stored %+v %v", got, err)
	}
	// No change from a copy needs no write.
	same, srev, err := st.UpdateJobFrom(ctx, got, 0, func(*api.Job) error { return kvstate.ErrNoChange })
	if err != nil || same.Restarts != 2 || srev == 0 {
		t.Fatalf("no change: %+v %d %v", same, srev, err)
	}
}
