// Package benchjobs holds the job types Drover's benchmark program runs
// (bench/): they do no work of their own, so what they measure is the
// framework — placement, heartbeats, fencing — and nothing else. They are
// not in the stock binaries; the benchmark registers them in its own.
package benchjobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/framework"
)

// Fanout is a job whose master creates Workers idle workers at once and
// keeps them until the job is canceled.
const Fanout = "bench-fanout"

// IdleWorker is the worker type of Fanout: it heartbeats and nothing else.
const IdleWorker = "bench-idle"

// MaxWorkers bounds one fanout job.
const MaxWorkers = 100_000

// FanoutConfig is the config of a Fanout job.
type FanoutConfig struct {
	Workers int `json:"workers"`
}

// ParseFanout decodes and checks a Fanout config.
func ParseFanout(raw json.RawMessage) (FanoutConfig, error) {
	c := FanoutConfig{Workers: 1}
	if err := framework.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("bench-fanout config: %w", err)
	}
	if c.Workers < 1 || c.Workers > MaxWorkers {
		return c, fmt.Errorf("bench-fanout config: workers must be 1..%d, got %d", MaxWorkers, c.Workers)
	}
	return c, nil
}

// Register adds the benchmark job types to r.
func Register(r *framework.Registry) error {
	return r.Register(framework.JobType{
		Name:      Fanout,
		Validate:  func(raw json.RawMessage) error { _, err := ParseFanout(raw); return err },
		NewMaster: newFanout,
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			IdleWorker: func(h framework.WorkerHandle) (framework.Worker, error) {
				return idle{framework.BaseWorker{H: h}}, nil
			},
		},
	})
}

// idleTick keeps timers out of the measurement: neither side of a fanout
// job has periodic work of its own.
const idleTick = 24 * time.Hour

type fanout struct {
	framework.BaseJobMaster
	cfg FanoutConfig
}

func newFanout(h framework.MasterHandle) (framework.JobMaster, error) {
	cfg, err := ParseFanout(h.Config())
	if err != nil {
		return nil, framework.Permanent(err)
	}
	return &fanout{BaseJobMaster: framework.BaseJobMaster{H: h}, cfg: cfg}, nil
}

func (f *fanout) TickInterval() time.Duration { return idleTick }

func workerID(i int) string { return "w" + strconv.Itoa(i) }

// Init places every worker at once: the burst is what the placement
// benchmark measures.
func (f *fanout) Init(ctx context.Context) error {
	for i := range f.cfg.Workers {
		if _, err := f.H.CreateWorker(ctx, IdleWorker, nil, framework.WithWorkerID(workerID(i))); err != nil {
			return err
		}
	}
	return nil
}

// OnWorkerDispatched makes a failed placement visible; the benchmark then
// times out waiting for the worker instead of reporting a wrong rate.
func (f *fanout) OnWorkerDispatched(w framework.WorkerInfo, err error) error {
	if err != nil {
		f.H.Logger().Warn("bench worker not placed", zap.String("worker_id", w.ID), zap.Error(err))
	}
	return nil
}

// OnWorkerOffline re-creates a worker that was lost, so a run ends with
// every worker online.
func (f *fanout) OnWorkerOffline(w framework.WorkerInfo, reason string) error {
	if reason == string(framework.ExitFinished) {
		return nil
	}
	_, err := f.H.CreateWorker(context.Background(), IdleWorker, nil, framework.WithWorkerID(w.ID))
	if err != nil {
		f.H.Logger().Warn("bench worker not re-created", zap.String("worker_id", w.ID), zap.Error(err))
	}
	return nil
}

type idle struct{ framework.BaseWorker }

func (idle) TickInterval() time.Duration { return idleTick }
