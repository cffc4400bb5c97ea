package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
)

// quietMaster runs one worker that never writes: no status, no end.
type quietMaster struct{ framework.BaseJobMaster }

func (m *quietMaster) Init(ctx context.Context) error {
	_, err := m.H.CreateWorker(ctx, "quiet", nil, framework.WithWorkerID("q0"))
	return err
}

// TestQuietWorkerRecordGoesOnline: a worker's record says online from its
// first write, and a worker that writes nothing of its own (no status, no
// end) has it written for it a heartbeat after it started, so the record
// never stays created while the worker runs.
func TestQuietWorkerRecordGoesOnline(t *testing.T) {
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "quiet",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			return &quietMaster{framework.BaseJobMaster{H: h}}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"quiet": func(h framework.WorkerHandle) (framework.Worker, error) { return &framework.BaseWorker{H: h}, nil },
		},
	})
	sys := startSmall(t, reg)
	st := openStore(t, sys)
	ctx := context.Background()
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "quiet1", Type: "quiet", Config: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*(sys.Timing.AssignTimeout+sys.Timing.Heartbeat), "the quiet worker's record online", func() bool {
		ws, err := st.ListWorkers(ctx, "quiet1")
		if err != nil || len(ws) != 1 {
			return false
		}
		return ws[0].Record.State == kvstate.WorkerOnline
	})
	if _, err := sys.Client.Cancel(ctx, "quiet1"); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.WaitJob("quiet1", 10*(sys.Timing.CancelTimeout+time.Second)); err != nil {
		t.Fatal(err)
	}
}

// TestWorkersCostNoDeliveryGoroutine: a node's workers receive their
// inboxes and business messages through the node's two lanes, not a
// nats.go delivery goroutine per subscription (two per worker before):
// 100 running workers add a handful of such goroutines to the system
// (the job's own subscriptions), not hundreds.
func TestWorkersCostNoDeliveryGoroutine(t *testing.T) {
	const n = 100
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "many",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			return &manyMaster{BaseJobMaster: framework.BaseJobMaster{H: h}}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"quiet": func(h framework.WorkerHandle) (framework.Worker, error) { return &framework.BaseWorker{H: h}, nil },
		},
	})
	sys := startSmall(t, reg)
	st := openStore(t, sys)
	ctx := context.Background()
	before := deliveryGoroutines()
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "many1", Type: "many", Config: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*(sys.Timing.AssignTimeout+sys.Timing.Heartbeat), "every worker's record online", func() bool {
		ws, err := st.ListWorkers(ctx, "many1")
		if err != nil || len(ws) != n {
			return false
		}
		for _, w := range ws {
			if w.Record.State != kvstate.WorkerOnline {
				return false
			}
		}
		return true
	})
	if added := deliveryGoroutines() - before; added > n/4 {
		t.Fatalf("%d workers running added %d nats.go delivery goroutines", n, added)
	}
	if _, err := sys.Client.Cancel(ctx, "many1"); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.WaitJob("many1", 10*(sys.Timing.CancelTimeout+time.Second)); err != nil {
		t.Fatal(err)
	}
}

// manyMaster runs 100 workers that write nothing of their own.
type manyMaster struct{ framework.BaseJobMaster }

func (m *manyMaster) Init(ctx context.Context) error {
	for i := range 100 {
		if _, err := m.H.CreateWorker(ctx, "quiet", nil, framework.WithWorkerID(fmt.Sprintf("q%d", i))); err != nil {
			return err
		}
	}
	return nil
}

// deliveryGoroutines counts the process's goroutines delivering an
// asynchronous subscription's messages (nats.go's waitForMsgs).
func deliveryGoroutines() int {
	return strings.Count(natstest.Goroutines(), "nats%2ego.(*Conn).waitForMsgs")
}
