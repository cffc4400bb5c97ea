package runtime_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

type badExitConfig struct {
	// Reason the master exits with; when Worker is set, the worker exits
	// with it instead and the master reports what it saw.
	Reason string `json:"reason"`
	Worker bool   `json:"worker"`
}

type badExitMaster struct {
	framework.BaseJobMaster
	cfg  badExitConfig
	seen func(framework.WorkerInfo)
}

func (m *badExitMaster) Init(ctx context.Context) error {
	if !m.cfg.Worker {
		m.H.Exit(framework.ExitReason(m.cfg.Reason), nil, nil)
		return nil
	}
	_, err := m.H.CreateWorker(ctx, "bad-exit-worker", m.cfg, framework.WithWorkerID("x"))
	return err
}

func (m *badExitMaster) OnWorkerOffline(w framework.WorkerInfo, _ string) error {
	m.seen(w)
	m.H.Exit(framework.ExitFinished, nil, nil)
	return nil
}

type badExitWorker struct{ framework.BaseWorker }

func (w *badExitWorker) Tick(context.Context) error {
	var cfg badExitConfig
	_ = json.Unmarshal(w.H.Config(), &cfg)
	w.H.Exit(framework.ExitReason(cfg.Reason), nil, nil)
	return nil
}

// TestExitWithUnknownReasonFails: Exit with a reason other than finished,
// failed or canceled ("" or "done") ends the incarnation failed with
// invalid_argument, never written as given: a master's job fails at once
// (permanent: no restart), a worker's master sees it failed.
func TestExitWithUnknownReasonFails(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]framework.WorkerInfo{}
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "bad-exit",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			var cfg badExitConfig
			if err := json.Unmarshal(h.Config(), &cfg); err != nil {
				return nil, framework.Permanent(err)
			}
			job := h.JobID()
			return &badExitMaster{BaseJobMaster: framework.BaseJobMaster{H: h}, cfg: cfg,
				seen: func(w framework.WorkerInfo) { mu.Lock(); seen[job] = w; mu.Unlock() }}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"bad-exit-worker": func(h framework.WorkerHandle) (framework.Worker, error) {
				return &badExitWorker{BaseWorker: framework.BaseWorker{H: h}}, nil
			},
		},
	})
	sys := startSmall(t, reg)
	ctx := context.Background()
	for _, tc := range []struct{ id, reason string }{{"empty", ""}, {"done", "done"}} {
		t.Run("master "+tc.id, func(t *testing.T) {
			cfg, _ := json.Marshal(badExitConfig{Reason: tc.reason})
			if _, err := sys.Client.Submit(ctx, api.Spec{ID: "master-" + tc.id, Type: "bad-exit", Config: cfg}); err != nil {
				t.Fatal(err)
			}
			j, err := sys.WaitJob("master-"+tc.id, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if j.State != api.StateFailed || codeOf(j.Error) != api.CodeInvalidArgument || j.Restarts != 0 {
				t.Errorf("job ended %s (%v) after %d restarts, want failed with invalid_argument and no restart",
					j.State, j.Error, j.Restarts)
			}
		})
		t.Run("worker "+tc.id, func(t *testing.T) {
			id := "worker-" + tc.id
			cfg, _ := json.Marshal(badExitConfig{Reason: tc.reason, Worker: true})
			if _, err := sys.Client.Submit(ctx, api.Spec{ID: id, Type: "bad-exit", Config: cfg}); err != nil {
				t.Fatal(err)
			}
			var w framework.WorkerInfo
			natstest.Eventually(t, 20*time.Second, "the worker's end at its master", func() bool {
				mu.Lock()
				defer mu.Unlock()
				var ok bool
				w, ok = seen[id]
				return ok
			})
			if w.State != "failed" || codeOf(w.Error) != api.CodeInvalidArgument || w.Failures != 1 {
				t.Errorf("worker ended %+v, want failed with invalid_argument counted as one failure", w)
			}
		})
	}
}

func codeOf(e *api.Error) api.Code {
	if e == nil {
		return ""
	}
	return e.Code
}
