package runtime_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/runtime"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

// runnerMaster creates three workers that run until stopped and records
// every callback about them.
type runnerMaster struct {
	framework.BaseJobMaster
	log *orderLog
}

func (m *runnerMaster) Init(ctx context.Context) error {
	for i := range 3 {
		if _, err := m.H.CreateWorker(ctx, "runner", nil, framework.WithWorkerID(fmt.Sprintf("r%d", i))); err != nil {
			return err
		}
	}
	return nil
}

func (m *runnerMaster) add(w framework.WorkerInfo, what string) {
	m.log.mu.Lock()
	defer m.log.mu.Unlock()
	m.log.calls[w.ID] = append(m.log.calls[w.ID], what)
}

func (m *runnerMaster) OnWorkerDispatched(w framework.WorkerInfo, err error) error {
	if err != nil {
		m.add(w, fmt.Sprintf("dispatched:%s/%s/%d", w.State, w.Reason, w.Failures))
		return nil
	}
	m.add(w, "dispatched")
	return nil
}
func (m *runnerMaster) OnWorkerOnline(w framework.WorkerInfo) error { m.add(w, "online"); return nil }
func (m *runnerMaster) OnWorkerOffline(w framework.WorkerInfo, reason string) error {
	m.add(w, "offline:"+reason)
	return nil
}

// TestCreateFailedThoughWorkerRanIsOneDispatchFailure: a create whose
// answer the master takes as failed (here injected, after the worker has
// started and heartbeated) reaches the job as OnWorkerDispatched with the
// error and nothing else — never OnWorkerOnline before it, so no
// OnWorkerOffline after it — and the running worker is stopped. (The
// other order, online only after a successful dispatch, is
// TestWorkerCallbacksInOrderWithExitError.)
func TestCreateFailedThoughWorkerRanIsOneDispatchFailure(t *testing.T) {
	t.Cleanup(runtime.FailCreateReplies(300 * time.Millisecond))
	log := &orderLog{calls: map[string][]string{}, errs: map[string]*api.Error{}}
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "runners",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			return &runnerMaster{BaseJobMaster: framework.BaseJobMaster{H: h}, log: log}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"runner": func(h framework.WorkerHandle) (framework.Worker, error) { return &framework.BaseWorker{H: h}, nil },
		},
	})
	sys := startSmall(t, reg)
	ctx := context.Background()
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "runners", Type: "runners"}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 20*time.Second, "three dispatch failures", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return len(log.calls) == 3
	})
	// The stopped workers leave their node: then nothing more can come.
	natstest.Eventually(t, 20*time.Second, "the worker node running none of them", func() bool {
		nodes, err := sys.Client.Nodes(ctx)
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.ID == "w1" {
				return n.Load == 0
			}
		}
		return false
	})
	// One more worker timeout: a wrongly kept worker would be declared lost.
	time.Sleep(sys.Timing.WorkerTimeout + time.Second)
	log.mu.Lock()
	defer log.mu.Unlock()
	for id, c := range log.calls {
		want := "dispatched:failed/" + framework.OfflineDispatchFailed + "/0"
		if got := strings.Join(c, ","); got != want {
			t.Errorf("worker %s: callbacks %s, want %s only", id, got, want)
		}
	}
}
