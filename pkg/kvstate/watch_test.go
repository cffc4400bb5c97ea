package kvstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
)

func next[E any](t *testing.T, w *kvstate.Watch[E]) E {
	t.Helper()
	select {
	case e, ok := <-w.Events():
		if !ok {
			t.Fatal("watch closed")
		}
		return e
	case <-time.After(kvstate.DefaultTimeout):
		t.Fatal("no event")
	}
	var zero E
	return zero
}

// The watches deliver typed events: the current records, the end of the
// replay, then each change with its revision; a delete carries the key.
func TestTypedWatches(t *testing.T) {
	st := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rev, err := st.CreateJob(ctx, &api.Job{ID: "j1", Type: "counter", State: api.StatePending})
	if err != nil {
		t.Fatal(err)
	}
	jw, err := st.WatchJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = jw.Stop() }()
	if e := next(t, jw); e.Op != kvstate.OpPut || e.ID != "j1" || e.Job == nil || e.Job.State != api.StatePending || e.Revision != rev {
		t.Fatalf("first event %+v", e)
	}
	if e := next(t, jw); e.Op != kvstate.OpSynced {
		t.Fatalf("replay not marked synced: %+v", e)
	}
	if _, _, err := st.UpdateJob(ctx, "j1", func(j *api.Job) error { j.State = api.StateRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	if e := next(t, jw); e.Op != kvstate.OpPut || e.Job.State != api.StateRunning || e.Revision <= rev {
		t.Fatalf("update event %+v", e)
	}

	nw, err := st.WatchNodes(ctx, api.NodeWorker)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = nw.Stop() }()
	if e := next(t, nw); e.Op != kvstate.OpSynced {
		t.Fatalf("empty replay: %+v", e)
	}
	if err := st.PutNode(ctx, &api.Node{Kind: api.NodeWorker, ID: "wk-1"}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, nw); e.Op != kvstate.OpPut || e.Kind != api.NodeWorker || e.ID != "wk-1" || e.Node == nil || e.Node.ID != "wk-1" {
		t.Fatalf("node event %+v", e)
	}
	if err := st.DeleteNode(ctx, api.NodeWorker, "wk-1"); err != nil {
		t.Fatal(err)
	}
	if e := next(t, nw); e.Op != kvstate.OpDelete || e.ID != "wk-1" {
		t.Fatalf("node delete event %+v", e)
	}
	// Stop closes the events.
	_ = nw.Stop()
	for range nw.Events() {
	}
}
