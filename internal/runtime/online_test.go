package runtime_test

import (
	"context"
	"encoding/json"
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
