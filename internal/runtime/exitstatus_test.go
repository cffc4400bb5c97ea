package runtime_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

// lastWordMaster creates one worker and ends with the status its
// OnWorkerOffline was given.
type lastWordMaster struct {
	framework.BaseJobMaster
	got chan json.RawMessage
}

func (m *lastWordMaster) Init(ctx context.Context) error {
	_, err := m.H.CreateWorker(ctx, "last", nil, framework.WithWorkerID("l0"))
	return err
}

func (m *lastWordMaster) OnWorkerStatusUpdated(framework.WorkerInfo, json.RawMessage) error {
	m.got <- json.RawMessage(`"unexpected OnWorkerStatusUpdated"`)
	return nil
}

func (m *lastWordMaster) OnWorkerOffline(w framework.WorkerInfo, _ string) error {
	m.got <- w.Status
	m.H.Exit(framework.ExitFinished, nil, nil)
	return nil
}

type lastWordWorker struct{ framework.BaseWorker }

func (w *lastWordWorker) Tick(context.Context) error {
	w.H.ExitWithStatus(framework.ExitFinished, nil, nil, map[string]int{"done": 7, "total": 7})
	return nil
}

// TestExitWithStatusReachesMasterAndRecord: a worker's final status given
// with its end is in its record and in the WorkerInfo of the master's
// OnWorkerOffline, in one write and with no OnWorkerStatusUpdated.
func TestExitWithStatusReachesMasterAndRecord(t *testing.T) {
	got := make(chan json.RawMessage, 4)
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "lastword",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			return &lastWordMaster{BaseJobMaster: framework.BaseJobMaster{H: h}, got: got}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"last": func(h framework.WorkerHandle) (framework.Worker, error) {
				return &lastWordWorker{framework.BaseWorker{H: h}}, nil
			},
		},
	})
	sys := startSmall(t, reg)
	st := openStore(t, sys)
	ctx := context.Background()
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "lastword1", Type: "lastword", Config: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if j, err := sys.WaitJob("lastword1", 10*(sys.Timing.AssignTimeout+time.Second)); err != nil || j.State != api.StateFinished {
		t.Fatalf("job: %+v %v", j, err)
	}
	if s := <-got; string(s) != `{"done":7,"total":7}` {
		t.Errorf("OnWorkerOffline got status %s, want the one given with the end", s)
	}
	ws, err := st.ListWorkers(ctx, "lastword1")
	if err != nil || len(ws) != 1 {
		t.Fatalf("workers: %v %v", ws, err)
	}
	if r := ws[0].Record; r.State != "finished" || string(r.Status) != `{"done":7,"total":7}` {
		t.Errorf("worker record %s with status %s, want finished with the final status", r.State, r.Status)
	}
}
