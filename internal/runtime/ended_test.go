package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// endLog records what the ender job's master saw.
type endLog struct {
	mu      sync.Mutex
	offline []string // "worker@workerEpoch by master epoch"
	ticks   map[uint64]int
	errs    []string
	infos   map[string]framework.WorkerInfo
}

func (l *endLog) with(f func(l *endLog)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
}

type enderConfig struct {
	Workers int `json:"workers"`
	// Remove: forget each worker once it ended, then re-create it once.
	Remove bool `json:"remove"`
}

// enderMaster runs workers that finish at once.
type enderMaster struct {
	framework.BaseJobMaster
	log *endLog
	cfg enderConfig
}

func (m *enderMaster) Init(ctx context.Context) error {
	for i := range m.cfg.Workers {
		if _, err := m.H.CreateWorker(ctx, "ender-worker", nil, framework.WithWorkerID(fmt.Sprintf("e%d", i))); err != nil {
			return err
		}
	}
	return nil
}

func (m *enderMaster) Tick(context.Context) error {
	e := m.H.Epoch()
	m.log.with(func(l *endLog) { l.ticks[e]++ })
	return nil
}

func (m *enderMaster) OnWorkerOffline(w framework.WorkerInfo, reason string) error {
	e := m.H.Epoch()
	m.log.with(func(l *endLog) { l.offline = append(l.offline, fmt.Sprintf("%s@%d by %d", w.ID, w.Epoch, e)) })
	if !m.cfg.Remove {
		return nil
	}
	ctx := context.Background()
	problem := func(format string, args ...any) {
		m.log.with(func(l *endLog) { l.errs = append(l.errs, fmt.Sprintf(format, args...)) })
	}
	if err := m.H.RemoveWorker(ctx, "nobody"); !errors.Is(err, framework.ErrUnknownWorker) {
		problem("remove unknown: %v", err)
	}
	if err := m.H.RemoveWorker(ctx, w.ID); err != nil {
		problem("remove %s: %v", w.ID, err)
	}
	if _, ok := m.H.Worker(w.ID); ok {
		problem("%s still known after RemoveWorker", w.ID)
	}
	if w.Epoch > 1 {
		return nil
	}
	// Re-created once: a fresh incarnation, with a higher epoch than any
	// this master ran under that id.
	if _, err := m.H.CreateWorker(ctx, "ender-worker", nil, framework.WithWorkerID(w.ID)); err != nil {
		problem("re-create %s: %v", w.ID, err)
	}
	if err := m.H.RemoveWorker(ctx, w.ID); !errors.Is(err, framework.ErrWorkerExists) {
		problem("remove live %s: %v", w.ID, err)
	}
	nw, _ := m.H.Worker(w.ID)
	m.log.with(func(l *endLog) { l.infos[w.ID] = nw })
	return nil
}

type enderWorker struct{ framework.BaseWorker }

func (w *enderWorker) Tick(context.Context) error {
	w.H.Exit(framework.ExitFinished, nil, nil)
	return nil
}

func enderRegistry(log *endLog) *framework.Registry {
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "ender",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			var cfg enderConfig
			if err := json.Unmarshal(h.Config(), &cfg); err != nil {
				return nil, framework.Permanent(err)
			}
			return &enderMaster{BaseJobMaster: framework.BaseJobMaster{H: h}, log: log, cfg: cfg}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"ender-worker": func(h framework.WorkerHandle) (framework.Worker, error) {
				return &enderWorker{BaseWorker: framework.BaseWorker{H: h}}, nil
			},
		},
	})
	return reg
}

// startSmall runs the smallest whole deployment for reg's types: a job
// manager, job-master node m1 and worker node w1, all ready.
func startSmall(t *testing.T, reg *framework.Registry) *testsys.System {
	t.Helper()
	sys := testsys.Start(t, reg)
	sys.AddJobManager("jm")
	sys.AddJobMaster("m1")
	sys.AddWorker("w1")
	sys.WaitReady(1, 1)
	return sys
}

func openStore(t *testing.T, sys *testsys.System) *kvstate.Store {
	t.Helper()
	_, js := natstest.Connect(t, sys.Server)
	st, err := kvstate.Open(context.Background(), js, topics.MustNew(topics.DefaultPrefix), kvstate.Options{OpenOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestEndedWorkersAreNotReplayedAtRecovery: a worker's end reaches
// OnWorkerOffline once; the masters that recover after it (two failovers
// here) do not deliver it again. Without the reported mark in the worker
// record each recovery replayed every ended worker.
func TestEndedWorkersAreNotReplayedAtRecovery(t *testing.T) {
	log := &endLog{ticks: map[uint64]int{}, infos: map[string]framework.WorkerInfo{}}
	sys := startSmall(t, enderRegistry(log))
	st := openStore(t, sys)
	ctx := context.Background()
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "ender1", Type: "ender", Config: json.RawMessage(`{"workers":2}`)}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*time.Second, "both ends delivered and recorded as reported", func() bool {
		ws, err := st.ListWorkers(ctx, "ender1")
		if err != nil || len(ws) != 2 {
			return false
		}
		for _, w := range ws {
			if !w.Record.Reported {
				return false
			}
		}
		return true
	})
	for i, node := range []string{"m1", "m2"} {
		next := fmt.Sprintf("m%d", i+2)
		sys.AddJobMaster(next)
		sys.WaitReady(2, 1)
		sys.Crash(node)
		// The ended workers are replayed, if at all, before the recovered
		// master's first tick: two ticks of a later epoch prove it passed.
		natstest.Eventually(t, 20*time.Second, "a recovered master ticking after "+node+" crashed", func() bool {
			done := false
			log.with(func(l *endLog) {
				for e, n := range l.ticks {
					if e > uint64(i+1) && n >= 2 {
						done = true
					}
				}
			})
			if done {
				// Let the next round find a later epoch.
				log.with(func(l *endLog) { clear(l.ticks) })
			}
			return done
		})
	}
	log.with(func(l *endLog) {
		if len(l.offline) != 2 {
			t.Errorf("OnWorkerOffline delivered %d times for 2 ended workers: %v", len(l.offline), l.offline)
		}
	})
}

// TestRemoveWorkerForgetsAnEndedWorker: RemoveWorker deletes an ended
// worker's record and the master forgets it; the id can be created again;
// a live or unknown worker is refused with the SDK's errors.
func TestRemoveWorkerForgetsAnEndedWorker(t *testing.T) {
	log := &endLog{ticks: map[uint64]int{}, infos: map[string]framework.WorkerInfo{}}
	sys := startSmall(t, enderRegistry(log))
	st := openStore(t, sys)
	ctx := context.Background()
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "ender2", Type: "ender",
		Config: json.RawMessage(`{"workers":2,"remove":true}`)}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*time.Second, "both workers ended twice and removed", func() bool {
		n := 0
		log.with(func(l *endLog) { n = len(l.offline) })
		if n < 4 {
			return false
		}
		ws, err := st.ListWorkers(ctx, "ender2")
		return err == nil && len(ws) == 0
	})
	log.with(func(l *endLog) {
		for _, e := range l.errs {
			t.Error(e)
		}
		for id, w := range l.infos {
			if w.Epoch != 2 || !w.Live() {
				t.Errorf("%s re-created after removal: %+v, want a live incarnation 2", id, w)
			}
		}
	})
	if ws, err := sys.Client.Workers(ctx, "ender2"); err != nil || len(ws) != 0 {
		t.Errorf("workers of the job after removal: %v %v", ws, err)
	}
}
