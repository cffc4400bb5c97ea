package runtime_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/runtime"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

type orderLog struct {
	mu    sync.Mutex
	calls map[string][]string // worker → callbacks in order
	errs  map[string]*api.Error
}

type orderMaster struct {
	framework.BaseJobMaster
	log *orderLog
}

const orderWorkers = 30

func (m *orderMaster) Init(ctx context.Context) error {
	for i := range orderWorkers {
		if _, err := m.H.CreateWorker(ctx, "order-worker", nil, framework.WithWorkerID(fmt.Sprintf("o%d", i))); err != nil {
			return err
		}
	}
	return nil
}

func (m *orderMaster) add(w framework.WorkerInfo, what string) {
	m.log.mu.Lock()
	defer m.log.mu.Unlock()
	m.log.calls[w.ID] = append(m.log.calls[w.ID], what)
	if what == "offline" {
		m.log.errs[w.ID] = w.Error
	}
}

func (m *orderMaster) OnWorkerDispatched(w framework.WorkerInfo, err error) error {
	m.add(w, "dispatched")
	return nil
}
func (m *orderMaster) OnWorkerOnline(w framework.WorkerInfo) error { m.add(w, "online"); return nil }
func (m *orderMaster) OnWorkerOffline(w framework.WorkerInfo, reason string) error {
	m.add(w, "offline")
	return nil
}

// orderWorker ends in Init, before its master may even have the answer to
// its create request, with an error.
type orderWorker struct{ framework.BaseWorker }

func (w *orderWorker) Init(context.Context) error {
	w.H.Exit(framework.ExitFailed, api.Errorf(api.CodeFailedPrecondition, "worker %s gives up", w.H.WorkerID()), nil)
	return nil
}

// TestWorkerCallbacksInOrderWithExitError: for every worker the master
// hears OnWorkerDispatched, then OnWorkerOnline, then OnWorkerOffline —
// even when the worker ends before its create request is answered — and
// OnWorkerOffline carries the error the worker exited with.
func TestWorkerCallbacksInOrderWithExitError(t *testing.T) {
	// The master learns of each create's answer 300 ms late: every worker
	// has heartbeated and exited by then.
	t.Cleanup(runtime.SlowCreateReplies(300 * time.Millisecond))
	log := &orderLog{calls: map[string][]string{}, errs: map[string]*api.Error{}}
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "order",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			return &orderMaster{BaseJobMaster: framework.BaseJobMaster{H: h}, log: log}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"order-worker": func(h framework.WorkerHandle) (framework.Worker, error) {
				return &orderWorker{framework.BaseWorker{H: h}}, nil
			},
		},
	})
	sys := testsys.Start(t, reg)
	sys.AddJobManager("jm")
	sys.AddJobMaster("m1")
	sys.AddWorker("w1")
	sys.WaitReady(1, 1)
	if _, err := sys.Client.Submit(context.Background(), api.Spec{ID: "order", Type: "order"}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 20*time.Second, "every worker offline", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		n := 0
		for _, c := range log.calls {
			if len(c) > 0 && c[len(c)-1] == "offline" {
				n++
			}
		}
		return n == orderWorkers
	})
	log.mu.Lock()
	defer log.mu.Unlock()
	for id, c := range log.calls {
		if got := strings.Join(c, ","); got != "dispatched,online,offline" {
			t.Errorf("worker %s: callbacks %s, want dispatched,online,offline", id, got)
		}
		if e := log.errs[id]; e == nil || e.Code != api.CodeFailedPrecondition || !strings.Contains(e.Message, "gives up") {
			t.Errorf("worker %s: OnWorkerOffline error %v, want its exit error", id, e)
		}
	}
}
