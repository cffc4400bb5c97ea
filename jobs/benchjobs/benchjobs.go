// Package benchjobs holds the job types Drover's benchmark program runs
// (bench/): they do no work of their own beyond the framework calls they
// exist to make, so what they measure is the framework — placement,
// heartbeats, status and KV writes, fencing — and nothing else. They are
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
// keeps them until the job is canceled; with 0 workers it is an idle,
// long-lived job of a master alone.
const Fanout = "bench-fanout"

// Active is a fanout job whose workers each update their status and one
// business KV key every Interval: the load of a job whose workers report.
const Active = "bench-active"

// ActiveWorker is the worker type of Active.
const ActiveWorker = "bench-active"

// IdleWorker is the worker type of Fanout: it heartbeats and nothing else.
const IdleWorker = "bench-idle"

// MaxWorkers bounds one fanout job.
const MaxWorkers = 100_000

// FanoutConfig is the config of a Fanout or Active job.
type FanoutConfig struct {
	Workers int `json:"workers"`
	// IntervalMs is an Active worker's period (default 1000).
	IntervalMs int `json:"interval_ms,omitempty"`
}

// ParseFanout decodes and checks a Fanout config.
func ParseFanout(raw json.RawMessage) (FanoutConfig, error) {
	c := FanoutConfig{Workers: 1, IntervalMs: 1000}
	if err := framework.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("bench-fanout config: %w", err)
	}
	if c.Workers < 0 || c.Workers > MaxWorkers {
		return c, fmt.Errorf("bench-fanout config: workers must be 0..%d, got %d", MaxWorkers, c.Workers)
	}
	if c.IntervalMs < 1 {
		return c, fmt.Errorf("bench-fanout config: interval_ms must be positive, got %d", c.IntervalMs)
	}
	return c, nil
}

// Register adds the benchmark job types to r.
func Register(r *framework.Registry) error {
	validate := func(raw json.RawMessage) error { _, err := ParseFanout(raw); return err }
	err := r.Register(framework.JobType{
		Name:      Fanout,
		Validate:  validate,
		NewMaster: fanoutOf(IdleWorker),
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			IdleWorker: func(h framework.WorkerHandle) (framework.Worker, error) {
				return idle{framework.BaseWorker{H: h}}, nil
			},
		},
	})
	if err != nil {
		return err
	}
	return r.Register(framework.JobType{
		Name:      Active,
		Validate:  validate,
		NewMaster: fanoutOf(ActiveWorker),
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			ActiveWorker: newActive,
		},
	})
}

// idleTick keeps timers out of the measurement: neither side of a fanout
// job has periodic work of its own.
const idleTick = 24 * time.Hour

type fanout struct {
	framework.BaseJobMaster
	cfg        FanoutConfig
	workerType string
	// config is each worker's config: the job's own.
	config json.RawMessage
	// statuses counts the status updates handled (an Active job's).
	statuses int64
}

func fanoutOf(workerType string) func(framework.MasterHandle) (framework.JobMaster, error) {
	return func(h framework.MasterHandle) (framework.JobMaster, error) {
		cfg, err := ParseFanout(h.Config())
		if err != nil {
			return nil, framework.Permanent(err)
		}
		return &fanout{BaseJobMaster: framework.BaseJobMaster{H: h}, cfg: cfg, workerType: workerType, config: h.Config()}, nil
	}
}

// ActiveDetail is an Active job's detail, written by its master every
// Interval: the status updates its loop has handled so far, so a reader
// can tell the rate the master keeps up with from the rate sent.
type ActiveDetail struct {
	Statuses int64     `json:"statuses"`
	At       time.Time `json:"at"`
}

func (f *fanout) TickInterval() time.Duration {
	if f.workerType == ActiveWorker {
		return time.Duration(f.cfg.IntervalMs) * time.Millisecond
	}
	return idleTick
}

// Tick reports an Active job's count of status updates. A failed write
// loses one report, not the job: the next tick writes the count again.
func (f *fanout) Tick(ctx context.Context) error {
	if f.workerType != ActiveWorker {
		return nil
	}
	if err := f.H.UpdateJobStatus(ctx, ActiveDetail{Statuses: f.statuses, At: time.Now()}); err != nil {
		f.H.Logger().Warn("bench status count not written", zap.Error(err))
	}
	return nil
}

// OnWorkerStatusUpdated runs on the master's loop, as Tick does.
func (f *fanout) OnWorkerStatusUpdated(framework.WorkerInfo, json.RawMessage) error {
	f.statuses++
	return nil
}

func workerID(i int) string { return "w" + strconv.Itoa(i) }

// Init places every worker at once: the burst is what the placement
// benchmark measures.
func (f *fanout) Init(ctx context.Context) error {
	for i := range f.cfg.Workers {
		if _, err := f.H.CreateWorker(ctx, f.workerType, f.config, framework.WithWorkerID(workerID(i))); err != nil {
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
	_, err := f.H.CreateWorker(context.Background(), f.workerType, f.config, framework.WithWorkerID(w.ID))
	if err != nil {
		f.H.Logger().Warn("bench worker not re-created", zap.String("worker_id", w.ID), zap.Error(err))
	}
	return nil
}

type idle struct{ framework.BaseWorker }

func (idle) TickInterval() time.Duration { return idleTick }

// active is an Active job's worker: each tick it writes its status (the
// worker record, and a status message to the master) and its own business
// KV key. A failed write fails the worker, and its master re-creates it: a
// master that cannot keep up shows as re-created workers.
type active struct {
	framework.BaseWorker
	every time.Duration
	key   string
	n     int
}

func newActive(h framework.WorkerHandle) (framework.Worker, error) {
	cfg, err := ParseFanout(h.Config())
	if err != nil {
		return nil, framework.Permanent(err)
	}
	return &active{BaseWorker: framework.BaseWorker{H: h}, every: time.Duration(cfg.IntervalMs) * time.Millisecond,
		key: "w." + h.WorkerID()}, nil
}

func (a *active) TickInterval() time.Duration { return a.every }

func (a *active) Tick(ctx context.Context) error {
	a.n++
	if err := a.H.UpdateStatus(ctx, activeStatus{Ticks: a.n}); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if _, err := a.H.KV().Put(ctx, a.key, strconv.AppendInt(nil, int64(a.n), 10)); err != nil {
		return fmt.Errorf("business kv: %w", err)
	}
	return nil
}

type activeStatus struct {
	Ticks int `json:"ticks"`
}
