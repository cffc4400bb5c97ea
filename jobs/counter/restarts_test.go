package counter_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/counter"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

// failingWorker fails at its first tick, except that the incarnation
// numbered hold waits for release first, so the test can kill the master
// while it runs.
type failingWorker struct {
	framework.BaseWorker
	hold    bool
	release <-chan struct{}
	failed  func(epoch uint64)
}

func (w *failingWorker) Tick(context.Context) error {
	if w.hold {
		select {
		case <-w.release:
		default:
			return nil
		}
	}
	w.failed(w.H.Epoch())
	return errors.New("this worker always fails")
}

// TestMaxWorkerRestartsHoldsAcrossMasterFailover: a counter worker that
// always fails is re-created after at most max_worker_restarts failures in
// all, though the master is killed half-way: the failure count lives in
// the worker record, not in the master's memory. Without that, the new
// master counted from zero and let it fail max_worker_restarts+1 more
// times (6 failures instead of 4: seen). A loss (the held incarnation
// timing out on a loaded machine) is no failure and is not counted.
func TestMaxWorkerRestartsHoldsAcrossMasterFailover(t *testing.T) {
	const maxRestarts, hold = 3, 3
	var mu sync.Mutex
	incarnations, failed := map[uint64]bool{}, map[uint64]bool{}
	release := make(chan struct{})
	jt := counter.Type()
	jt.Workers = map[string]func(framework.WorkerHandle) (framework.Worker, error){
		counter.WorkerType: func(h framework.WorkerHandle) (framework.Worker, error) {
			mu.Lock()
			incarnations[h.Epoch()] = true
			mu.Unlock()
			return &failingWorker{BaseWorker: framework.BaseWorker{H: h}, hold: h.Epoch() == hold, release: release,
				failed: func(e uint64) { mu.Lock(); failed[e] = true; mu.Unlock() }}, nil
		},
	}
	reg := framework.NewRegistry()
	reg.MustRegister(jt)
	sys := testsys.Start(t, reg)
	// The held worker must outlive the failover instead of fencing itself.
	sys.Timing.WorkerSelfFence, sys.Timing.WorkerTimeout = 5*time.Second, 6*time.Second
	sys.AddJobManager("jm")
	sys.AddJobMaster("m1")
	sys.AddWorker("w1")
	sys.WaitReady(1, 1)
	zero := 0
	ctx := context.Background()
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "failing", Type: counter.Name,
		Config:  json.RawMessage(`{"workers":1,"target":5,"interval_ms":1,"max_worker_restarts":3}`),
		Restart: &api.RestartPolicy{MaxRestarts: &zero}}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 20*time.Second, "the held incarnation running", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return incarnations[hold]
	})
	sys.AddJobMaster("m2")
	sys.WaitReady(2, 1)
	sys.Crash("m1")
	natstest.Eventually(t, 20*time.Second, "a recovered master", func() bool {
		j, err := sys.Client.Get(ctx, "failing")
		return err == nil && j.Epoch > 1 && j.State == api.StateRunning
	})
	close(release)
	j, err := sys.WaitJob("failing", 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.StateFailed {
		t.Errorf("job %s, want failed once the worker failed %d times", j.State, maxRestarts+1)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(failed); n != maxRestarts+1 {
		t.Errorf("%d worker incarnations failed, want %d (max_worker_restarts=%d and the first run)", n, maxRestarts+1, maxRestarts)
	}
}
