package jobmanager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
		return metricValue(t, jm.Registry, "drover_kv_operation_seconds", map[string]string{"op": "last_job_event"})
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
	// No job-master node: each is stored pending, its events sent after the
	// store (TestAJobNoNodeCanTakeIsStoredPending).
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
	// (the read then stands in): most jobs, not all, are asked. The jobs
	// stored pending are not in the log (they may wait long): each is read
	// for once as it is assigned, before the count starts.
	sys.AddJobMaster("master-0")
	sys.AddWorker("worker-0")
	sys.WaitReady(1, 1)
	finished := func(p string) {
		t.Helper()
		for i := range n {
			id := fmt.Sprintf("%s%d", p, i)
			if j, err := sys.WaitJob(id, 30*time.Second); err != nil || j.State != api.StateFinished {
				t.Fatalf("job %s: %v %v", id, j, err)
			}
			history(id, api.StateCreated, map[string]api.State{"p": api.StatePending, "r": api.StateRunning}[p])
		}
	}
	finished("p")
	before := reads()
	for i := range n {
		if _, err := sys.Client.Submit(ctx, spec(fmt.Sprintf("r%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	finished("r")
	if r := reads() - before; r >= n/2 {
		t.Fatalf("the leader read the events stream %v times for %d jobs its replica stored and assigned", r, n)
	}

	// A submitter that stored the record and died before its event: the
	// leader, which never saw it, reads the stream and publishes it first.
	_, js := natstest.Connect(t, sys.Server)
	st, err := kvstate.Open(ctx, js, topics.MustNew(topics.DefaultPrefix), kvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	before = reads()
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

// TestAJobNoNodeCanTakeIsStoredPending: a job submitted while no
// job-master node can take it is stored pending at once (its record
// written once, not created then pending), its history created then
// pending; once a node comes it runs, each event once and in order. A
// submitter that died after the store, before one or both of its events,
// has them published by the leader before the job's next.
func TestAJobNoNodeCanTakeIsStoredPending(t *testing.T) {
	sys := startSystem(t, 0, 0)
	jm := sys.Proc("jm-a")
	ctx := context.Background()
	natstest.Eventually(t, 10*time.Second, "jm-a leads", jm.Service.(*jobmanager.Service).Leading)
	spec := func(id string) api.Spec {
		return api.Spec{ID: id, Type: "counter", Config: json.RawMessage(`{"workers":1,"target":1,"interval_ms":0}`)}
	}
	_, js := natstest.Connect(t, sys.Server)
	space := topics.MustNew(topics.DefaultPrefix)
	st, err := kvstate.Open(ctx, js, space, kvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	jobsKV, err := js.KeyValue(ctx, space.JobsBucket())
	if err != nil {
		t.Fatal(err)
	}
	// states are job id's state events in the stream, with their reasons.
	states := func(id string) []string {
		t.Helper()
		evs, _, err := sys.Client.Events(ctx, api.EventsRequest{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range evs {
			if ev.Kind == api.EventState {
				out = append(out, string(ev.State)+"/"+ev.Reason)
			}
		}
		return out
	}
	submitted := []string{"created/submitted", "pending/no_capacity"}
	// Every state lone's record is written in (the bucket keeps only the last).
	w, err := jobsKV.Watch(ctx, "lone", jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var records []api.State
	recordsDone := make(chan struct{})
	go func() {
		defer close(recordsDone)
		for e := range w.Updates() {
			var j api.Job
			if e != nil && json.Unmarshal(e.Value(), &j) == nil {
				records = append(records, j.State)
				if j.State.Terminal() {
					return
				}
			}
		}
	}()
	j, err := sys.Client.Submit(ctx, spec("lone"))
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.StatePending {
		t.Fatalf("submitted with no job-master node: state %s, want pending", j.State)
	}
	natstest.Eventually(t, 10*time.Second, "lone's events", func() bool { return len(states("lone")) >= 2 })
	if got := states("lone"); fmt.Sprint(got) != fmt.Sprint(submitted) {
		t.Fatalf("lone's history %v, want %v", got, submitted)
	}

	// Submitters that died after the store: one before both its events,
	// one between them.
	now := time.Now().UTC()
	for _, id := range []string{"none", "half"} {
		s := spec(id)
		if _, err := st.CreateJob(ctx, &api.Job{ID: id, Type: s.Type, Config: s.Config, State: api.StatePending,
			CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, mustSubject(t, space, "half"), mustJSON(t, api.Event{Job: "half", Kind: api.EventState,
		State: api.StateCreated, Reason: "submitted", Time: now})); err != nil {
		t.Fatal(err)
	}

	sys.AddJobMaster("master-0")
	sys.AddWorker("worker-0")
	sys.WaitReady(1, 1)
	want := append(submitted, "running/assigned", "finished/master_finished")
	for _, id := range []string{"lone", "none", "half"} {
		if j, err := sys.WaitJob(id, 30*time.Second); err != nil || j.State != api.StateFinished {
			t.Fatalf("job %s: %v %v", id, j, err)
		}
		natstest.Eventually(t, 10*time.Second, id+"'s history", func() bool { return len(states(id)) >= len(want) })
		if got := states(id); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s's history %v, want %v", id, got, want)
		}
	}
	select {
	case <-recordsDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch of lone's record never saw it finish")
	}
	// The leader, which would have marked it pending, had nothing to write.
	if len(records) < 2 || records[0] != api.StatePending || slices.Contains(records[1:], api.StatePending) ||
		slices.Contains(records, api.StateCreated) {
		t.Errorf("lone's record was written in states %v, want pending once, first, then running", records)
	}
}

func mustSubject(t *testing.T, space topics.Space, job string) string {
	t.Helper()
	subj, err := space.JobEvents(job)
	if err != nil {
		t.Fatal(err)
	}
	return subj
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
