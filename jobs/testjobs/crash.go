package testjobs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/drover-run/drover/pkg/framework"
)

// Crash is the job type whose code fails the way buggy job code does: it
// panics, hangs or ends its whole process at a chosen place. It drives the
// isolation tests: a crash must fail that job alone.
const (
	Crash       = "crash"
	CrashWorker = "crash-worker"
)

// Places a crash job can crash at, and how.
const (
	AtInit       = "init"
	AtTick       = "tick"
	AtRecovered  = "recovered"
	AtRoute      = "route"
	AtWorkerInit = "worker_init"
	AtWorkerTick = "worker_tick"

	HowPanic = "panic"
	HowHang  = "hang"
	// HowExit ends the whole process at once (SIGKILL to itself), as a
	// crash in cgo or an out-of-memory kill would.
	HowExit = "exit"
)

// CrashRoute is the route (GET) that crashes a job configured at "route".
const CrashRoute = "/crash"

// CrashConfig configures a crash job.
type CrashConfig struct {
	At  string `json:"at"`
	How string `json:"how"`
	// Workers the master starts (default 1); each ticks until the job ends.
	Workers int `json:"workers,omitempty"`
}

// ParseCrash decodes and checks a crash config.
func ParseCrash(raw json.RawMessage) (CrashConfig, error) {
	c := CrashConfig{Workers: 1}
	if err := framework.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("crash config: %w", err)
	}
	switch c.At {
	case AtInit, AtTick, AtRecovered, AtRoute, AtWorkerInit, AtWorkerTick:
	default:
		return c, fmt.Errorf("crash config: at must be init, tick, recovered, route, worker_init or worker_tick, got %q", c.At)
	}
	switch c.How {
	case HowPanic, HowHang, HowExit:
	default:
		return c, fmt.Errorf("crash config: how must be panic, hang or exit, got %q", c.How)
	}
	if c.Workers < 0 || c.Workers > 100 {
		return c, fmt.Errorf("crash config: workers must be 0..100")
	}
	return c, nil
}

// CrashType returns the crash job type.
func CrashType() framework.JobType {
	return framework.JobType{
		Name:     Crash,
		Validate: func(raw json.RawMessage) error { _, err := ParseCrash(raw); return err },
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			cfg, err := ParseCrash(h.Config())
			if err != nil {
				return nil, framework.Permanent(err)
			}
			return &crashMaster{BaseJobMaster: framework.BaseJobMaster{H: h}, cfg: cfg}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			CrashWorker: func(h framework.WorkerHandle) (framework.Worker, error) {
				cfg, err := ParseCrash(h.Config())
				if err != nil {
					return nil, framework.Permanent(err)
				}
				return &crashWorker{BaseWorker: framework.BaseWorker{H: h}, cfg: cfg}, nil
			},
		},
	}
}

// crash fails the calling job code as cfg says, if it is at place.
func crash(ctx context.Context, cfg CrashConfig, place string) {
	if cfg.At != place {
		return
	}
	switch cfg.How {
	case HowPanic:
		panic("crash job: panic at " + place)
	case HowHang:
		// Honours nothing the runtime can see: only the end of the
		// incarnation's context (or a long time) releases it.
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Minute):
		}
	case HowExit:
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

type crashMaster struct {
	framework.BaseJobMaster
	cfg CrashConfig
}

func (m *crashMaster) TickInterval() time.Duration { return 20 * time.Millisecond }

func (m *crashMaster) Init(ctx context.Context) error {
	crash(ctx, m.cfg, AtInit)
	for i := range m.cfg.Workers {
		cfg, _ := json.Marshal(m.cfg)
		if _, err := m.H.CreateWorker(ctx, CrashWorker, json.RawMessage(cfg), framework.WithWorkerID(fmt.Sprintf("c%d", i))); err != nil {
			return err
		}
	}
	return nil
}

func (m *crashMaster) OnMasterRecovered(ctx context.Context) error {
	crash(ctx, m.cfg, AtRecovered)
	return nil
}

func (m *crashMaster) Tick(ctx context.Context) error {
	crash(ctx, m.cfg, AtTick)
	return nil
}

// OnWorkerOffline fails the job with the worker's end (its error, when it
// exited with one): a crash job never finishes on its own.
func (m *crashMaster) OnWorkerOffline(w framework.WorkerInfo, reason string) error {
	if w.Error != nil {
		m.H.Exit(framework.ExitFailed, w.Error, nil)
		return nil
	}
	m.H.Exit(framework.ExitFailed, fmt.Errorf("worker %s ended: %s", w.ID, reason), nil)
	return nil
}

func (m *crashMaster) OnOpenAPIInitialized(r framework.Router) {
	r.HandleFunc("GET "+CrashRoute, func(w http.ResponseWriter, req *http.Request) {
		crash(req.Context(), m.cfg, AtRoute)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"crashed":false}`))
	})
}

type crashWorker struct {
	framework.BaseWorker
	cfg CrashConfig
}

func (w *crashWorker) TickInterval() time.Duration { return 20 * time.Millisecond }

func (w *crashWorker) Init(ctx context.Context) error {
	crash(ctx, w.cfg, AtWorkerInit)
	return nil
}

func (w *crashWorker) Tick(ctx context.Context) error {
	crash(ctx, w.cfg, AtWorkerTick)
	return nil
}
