package jobmanager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
	"github.com/drover-run/drover/services/jobmanager"
)

// TestTheLeaderTrustsOnlyTheCreatedEventsItsReplicaSent: jobs stored by
// the leader's own replica move out of created without a read of the
// events stream (their created event was sent on the leader's connection,
// or the stream answered it), and each history still begins with it; a
// job whose submitter stored the record but never sent its event gets the
// event from the leader, first.
func TestTheLeaderTrustsOnlyTheCreatedEventsItsReplicaSent(t *testing.T) {
	sys := startSystem(t, 0, 0)
	jm := sys.Proc("jm-a")
	ctx := context.Background()
	// A job stored before the replica leads is not in its log (it reads).
	natstest.Eventually(t, 10*time.Second, "jm-a leads", jm.Service.(*jobmanager.Service).Leading)
	reads := func() float64 {
		return metricValue(t, jm.Registry, "drover_kv_operation_seconds", map[string]string{"op": "has_job_events"})
	}
	spec := func(id string) api.Spec {
		return api.Spec{ID: id, Type: "counter", Config: json.RawMessage(`{"workers":1,"target":1,"interval_ms":0}`)}
	}
	// history waits for job id's events to include want, in order from the
	// first.
	history := func(id string, want ...api.State) {
		t.Helper()
		var got []api.State
		natstest.Eventually(t, 10*time.Second, id+"'s history", func() bool {
			evs, _, err := sys.Client.Events(ctx, api.EventsRequest{ID: id})
			if err != nil {
				t.Fatal(err)
			}
			got = got[:0]
			for _, ev := range evs {
				if ev.Kind == api.EventState {
					got = append(got, ev.State)
				}
			}
			return len(got) >= len(want) && fmt.Sprint(got[:len(want)]) == fmt.Sprint(want)
		})
	}
	const n = 10
	// No job-master node: the leader marks each pending, its own event next.
	for i := range n {
		if _, err := sys.Client.Submit(ctx, spec(fmt.Sprintf("p%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		history(fmt.Sprintf("p%d", i), api.StateCreated, api.StatePending)
	}
	if r := reads(); r != 0 {
		t.Fatalf("the leader read the events stream %v times for jobs its replica stored", r)
	}

	// With a node, the master's events come next: the stream's answer
	// stands for the read. A busy machine may keep an answer past its wait
	// (the read then stands in): most jobs, not all, are asked.
	sys.AddJobMaster("master-0")
	sys.AddWorker("worker-0")
	sys.WaitReady(1, 1)
	for i := range n {
		if _, err := sys.Client.Submit(ctx, spec(fmt.Sprintf("r%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"p", "r"} {
		for i := range n {
			id := fmt.Sprintf("%s%d", p, i)
			if j, err := sys.WaitJob(id, 30*time.Second); err != nil || j.State != api.StateFinished {
				t.Fatalf("job %s: %v %v", id, j, err)
			}
			history(id, api.StateCreated, map[string]api.State{"p": api.StatePending, "r": api.StateRunning}[p])
		}
	}
	if r := reads(); r >= n/2 {
		t.Fatalf("the leader read the events stream %v times for %d jobs its replica stored and assigned", r, n)
	}

	// A submitter that stored the record and died before its event: the
	// leader, which never saw it, reads the stream and publishes it first.
	_, js := natstest.Connect(t, sys.Server)
	st, err := kvstate.Open(ctx, js, topics.MustNew(topics.DefaultPrefix), kvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := reads()
	now := time.Now().UTC()
	s := spec("orphan")
	if _, err := st.CreateJob(ctx, &api.Job{ID: s.ID, Type: s.Type, Config: s.Config, State: api.StateCreated,
		CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if j, err := sys.WaitJob("orphan", 30*time.Second); err != nil || j.State != api.StateFinished {
		t.Fatalf("orphan: %v %v", j, err)
	}
	history("orphan", api.StateCreated, api.StateRunning)
	if reads() == before {
		t.Error("the leader took a created event it never saw as stored")
	}
}
