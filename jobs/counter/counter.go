// Package counter is the reference job type: N workers each count from 0 to
// M, one step per tick, persisting every step with a fenced write. A correct
// run ends with total == N*M exactly whatever was killed on the way, which
// makes it the oracle of Drover's fault tests and benchmarks.
package counter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/framework"
)

// Name is the job type name.
const Name = "counter"

// WorkerType is the worker type name.
const WorkerType = "counter"

// Limits keep one job from swamping a deployment by accident.
const (
	MaxWorkers = 10000
	MaxTarget  = 1_000_000_000
)

// Config is the job's config.
type Config struct {
	Workers    int `json:"workers"`
	Target     int `json:"target"`
	IntervalMS int `json:"interval_ms"`
	// MaxWorkerRestarts bounds re-creations of a failed worker (not of lost ones).
	MaxWorkerRestarts int `json:"max_worker_restarts,omitempty"`
}

// ParseConfig decodes and checks a config, applying defaults.
func ParseConfig(raw json.RawMessage) (Config, error) {
	c := Config{Workers: 1, Target: 10, IntervalMS: 10, MaxWorkerRestarts: 3}
	if err := framework.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("counter config: %w", err)
	}
	switch {
	case c.Workers < 1 || c.Workers > MaxWorkers:
		return c, fmt.Errorf("counter config: workers must be 1..%d, got %d", MaxWorkers, c.Workers)
	case c.Target < 0 || c.Target > MaxTarget:
		return c, fmt.Errorf("counter config: target must be 0..%d, got %d", MaxTarget, c.Target)
	case c.IntervalMS < 0 || c.IntervalMS > 60_000:
		return c, fmt.Errorf("counter config: interval_ms must be 0..60000, got %d", c.IntervalMS)
	}
	return c, nil
}

// Type returns the job type to register.
func Type() framework.JobType {
	return framework.JobType{
		Name:      Name,
		Validate:  func(raw json.RawMessage) error { _, err := ParseConfig(raw); return err },
		NewMaster: newMaster,
		Workers:   map[string]func(framework.WorkerHandle) (framework.Worker, error){WorkerType: newWorker},
	}
}

// workerConfig is what each worker is created with.
type workerConfig struct {
	Target     int `json:"target"`
	IntervalMS int `json:"interval_ms"`
}

// Status is what a worker reports: done of total steps.
type Status struct {
	Done  int `json:"done"`
	Total int `json:"total"`
}

// Detail is the finished job's detail.
type Detail struct {
	Counts  map[string]int `json:"counts"`
	Total   int            `json:"total"`
	Workers int            `json:"workers"`
	Target  int            `json:"target"`
}

func workerID(i int) string     { return "w" + strconv.Itoa(i) }
func countKey(id string) string { return "count." + id }

type master struct {
	framework.BaseJobMaster
	cfg Config
	// finished holds the ids whose worker finished; swept is when the
	// last full reconcile ran. A worker's end touches only its own index,
	// so 10,000 workers ending cost 10,000 steps, not 10,000 full passes
	// (which kept the master's loop busy for minutes).
	finished map[string]bool
	swept    time.Time
}

// sweepEvery is how often Tick runs a full reconcile: it catches what no
// event names (a recovery, a worker that never came). The master ticks at
// this interval, not the runtime's default 100 ms: a thousand idle counter
// masters ticking ten times a second kept a third of their node's CPU busy.
const sweepEvery = time.Second

func newMaster(h framework.MasterHandle) (framework.JobMaster, error) {
	cfg, err := ParseConfig(h.Config())
	if err != nil {
		return nil, framework.Permanent(err)
	}
	return &master{BaseJobMaster: framework.BaseJobMaster{H: h}, cfg: cfg, finished: map[string]bool{}}, nil
}

func (m *master) Init(ctx context.Context) error { return m.reconcile(ctx) }

// TickInterval: a full reconcile is all Tick does.
func (m *master) TickInterval() time.Duration { return sweepEvery }

func (m *master) Tick(ctx context.Context) error {
	if time.Since(m.swept) < sweepEvery/2 {
		return nil // Init's reconcile just ran
	}
	return m.reconcile(ctx)
}

func (m *master) OnWorkerOffline(w framework.WorkerInfo, _ string) error {
	if !m.H.IsMasterReady() {
		return nil
	}
	if err := m.reconcileOne(context.Background(), w.ID); err != nil {
		return err
	}
	return m.exitIfDone(context.Background())
}

// reconcile makes sure every index has a live or finished worker and exits
// once all have finished. It is driven by state, not events, so it is the
// same after a recovery as on a first start: the failures it bounds are
// the runtime's persisted count (WorkerInfo.Failures), which holds across
// master failovers.
func (m *master) reconcile(ctx context.Context) error {
	if !m.H.IsMasterReady() {
		return nil
	}
	m.swept = time.Now()
	for i := range m.cfg.Workers {
		if err := m.reconcileOne(ctx, workerID(i)); err != nil {
			return err
		}
	}
	return m.exitIfDone(ctx)
}

// reconcileOne makes sure worker id is live or finished.
func (m *master) reconcileOne(ctx context.Context, id string) error {
	w, ok := m.H.Worker(id)
	switch {
	case ok && w.Live():
		return nil
	case ok && w.State == "finished":
		m.finished[id] = true
		return nil
	case ok && w.Failures > m.cfg.MaxWorkerRestarts:
		m.H.Exit(framework.ExitFailed, fmt.Errorf("worker %s failed %d times", id, w.Failures), nil)
		return nil
	}
	_, err := m.H.CreateWorker(ctx, WorkerType, workerConfig{Target: m.cfg.Target, IntervalMS: m.cfg.IntervalMS},
		framework.WithWorkerID(id))
	if err != nil && !errors.Is(err, framework.ErrWorkerExists) && !errors.Is(err, framework.ErrExited) {
		return err
	}
	return nil
}

func (m *master) exitIfDone(ctx context.Context) error {
	if len(m.finished) < m.cfg.Workers {
		return nil
	}
	d, err := m.detail(ctx)
	if err != nil {
		return err
	}
	m.H.Exit(framework.ExitFinished, nil, d)
	return nil
}

// detail reads every count from business KV: the durable truth, not messages.
func (m *master) detail(ctx context.Context) (Detail, error) {
	d := Detail{Counts: map[string]int{}, Workers: m.cfg.Workers, Target: m.cfg.Target}
	for i := range m.cfg.Workers {
		id := workerID(i)
		c, err := readCount(ctx, m.H.KV(), id)
		if err != nil {
			return d, err
		}
		d.Counts[id] = c
		d.Total += c
	}
	return d, nil
}

func (m *master) OnOpenAPIInitialized(r framework.Router) {
	r.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		type ws struct {
			ID     string          `json:"id"`
			State  string          `json:"state"`
			Node   string          `json:"node"`
			Epoch  uint64          `json:"epoch"`
			Status json.RawMessage `json:"status,omitempty"`
		}
		out := struct {
			Ready   bool `json:"ready"`
			Done    int  `json:"done"`
			Total   int  `json:"total"`
			Workers []ws `json:"workers"`
		}{Ready: m.H.IsMasterReady(), Total: m.cfg.Workers * m.cfg.Target}
		for _, wi := range m.H.Workers() {
			out.Workers = append(out.Workers, ws{wi.ID, wi.State, wi.Node, wi.Epoch, wi.Status})
			var st Status
			if json.Unmarshal(wi.Status, &st) == nil {
				out.Done += st.Done
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

func readCount(ctx context.Context, kv framework.KV, id string) (int, error) {
	v, _, err := kv.Get(ctx, countKey(id))
	if errors.Is(err, framework.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(v))
}

type worker struct {
	framework.BaseWorker
	cfg        workerConfig
	count      int
	lastStatus time.Time
}

func newWorker(h framework.WorkerHandle) (framework.Worker, error) {
	var cfg workerConfig
	if err := json.Unmarshal(h.Config(), &cfg); err != nil {
		return nil, fmt.Errorf("counter worker config: %w", err)
	}
	return &worker{BaseWorker: framework.BaseWorker{H: h}, cfg: cfg}, nil
}

func (w *worker) TickInterval() time.Duration {
	if w.cfg.IntervalMS <= 0 {
		return time.Millisecond
	}
	return time.Duration(w.cfg.IntervalMS) * time.Millisecond
}

// Init resumes from the checkpoint a previous incarnation left.
func (w *worker) Init(ctx context.Context) error {
	c, err := readCount(ctx, w.H.KV(), w.H.WorkerID())
	if err != nil {
		return err
	}
	w.count = c
	if c > 0 {
		w.H.Logger().Info("counter resumes from checkpoint", zap.Int("count", c))
	}
	return nil
}

// Tick takes one step: the fenced write is the step; only once it is
// durable does the count advance. The step that reaches the target also
// reports the final count and exits.
func (w *worker) Tick(ctx context.Context) error {
	if w.count < w.cfg.Target {
		next := w.count + 1
		if _, err := w.H.KV().Put(ctx, countKey(w.H.WorkerID()), []byte(strconv.Itoa(next))); err != nil {
			return err
		}
		w.count = next
	}
	if w.count >= w.cfg.Target {
		// The final count goes with the end: one write, not two.
		w.H.ExitWithStatus(framework.ExitFinished, nil, map[string]int{"count": w.count},
			Status{Done: w.count, Total: w.cfg.Target})
		return nil
	}
	if time.Since(w.lastStatus) >= 250*time.Millisecond {
		return w.report(ctx)
	}
	return nil
}

func (w *worker) report(ctx context.Context) error {
	w.lastStatus = time.Now()
	return w.H.UpdateStatus(ctx, Status{Done: w.count, Total: w.cfg.Target})
}
