package kvstate_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

type observed struct {
	op  string
	err error
}

// TestObserverSeesEveryOperationAndItsOutcome checks the hook the services
// turn into drover_kv_operation_seconds: each domain operation is reported
// once under its name, and expected outcomes (missing key, fenced write,
// an update its caller aborted) are not failures.
func TestObserverSeesEveryOperationAndItsOutcome(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	var mu sync.Mutex
	var seen []observed
	st, err := kvstate.Open(context.Background(), js, topics.MustNew("t"), kvstate.Options{
		Observer: func(op string, took time.Duration, err error) {
			if took < 0 {
				t.Errorf("%s: negative latency", op)
			}
			mu.Lock()
			seen = append(seen, observed{op, err})
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	take := func() []observed {
		mu.Lock()
		defer mu.Unlock()
		out := seen
		seen = nil
		return out
	}

	if _, err := st.CreateJob(ctx, &api.Job{ID: "j1", Type: "t"}); err != nil {
		t.Fatal(err)
	}
	_, _, _ = st.GetJob(ctx, "missing")
	aborted := errors.New("caller changed its mind")
	if _, _, err := st.UpdateJob(ctx, "j1", func(*api.Job) error { return aborted }); !errors.Is(err, aborted) {
		t.Fatalf("update: %v", err)
	}
	got := take()
	// UpdateJob reads through GetJob, which reports itself too.
	want := []string{"create_job", "get_job", "get_job", "update_job"}
	if len(got) != len(want) {
		t.Fatalf("observed %v, want ops %v", got, want)
	}
	for i, o := range got {
		if o.op != want[i] {
			t.Fatalf("observed %v, want ops %v", got, want)
		}
		if kvstate.IsFailure(o.err) {
			t.Errorf("%s reported as a failure: %v", o.op, o.err)
		}
	}
	if !errors.Is(got[1].err, kvstate.ErrNotFound) {
		t.Errorf("get of a missing job: %v, want ErrNotFound", got[1].err)
	}
	if got[3].err != nil {
		t.Errorf("an update its caller aborted reported %v, want nil", got[3].err)
	}

	// A stale writer's business write is an outcome (ErrStaleEpoch), not a failure.
	_, f1, err := st.AdvanceEpoch(ctx, "j1", func(*kvstate.MasterRecord) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.AdvanceEpoch(ctx, "j1", func(*kvstate.MasterRecord) {}); err != nil {
		t.Fatal(err)
	}
	take()
	if _, err := st.Business("j1", f1, nil).Put(ctx, "k", []byte("v")); !errors.Is(err, kvstate.ErrStaleEpoch) {
		t.Fatalf("stale put: %v", err)
	}
	got = take()
	if len(got) != 1 || got[0].op != "business_put" || !errors.Is(got[0].err, kvstate.ErrStaleEpoch) || kvstate.IsFailure(got[0].err) {
		t.Fatalf("stale business put observed as %v", got)
	}
	if !kvstate.IsFailure(context.DeadlineExceeded) {
		t.Error("a timeout is a failure")
	}
}
