package runtime

import (
	"container/heap"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/placement"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
)

// Pacing is how a master spends its effort when the deployment is short
// of capacity or the master itself is overloaded (docs/architecture.md,
// Waiting and overload). Zero fields take the defaults.
type Pacing struct {
	// PlacementBackoff is the first wait of a worker no node can take, and
	// of a worker re-created after its previous incarnation was lost; each
	// further failed attempt doubles it, up to PlacementBackoffMax.
	PlacementBackoff    time.Duration
	PlacementBackoffMax time.Duration
	// MaxRecreations caps the placements in flight of workers re-created
	// after a loss: a wave of losses never becomes a wave of creations.
	MaxRecreations int
	// LateBurst is how many workers found silent in one sweep make the
	// master read it as its own overload rather than failures: it widens
	// its patience (doubling the worker timeout, up to WorkerTimeoutMax)
	// instead of declaring them lost.
	LateBurst        int
	WorkerTimeoutMax time.Duration
	// LogRate is how many per-worker log lines a master writes a second;
	// beyond it they are counted and summarised in one line.
	LogRate int
}

// Pacing defaults (docs/operations.md).
const (
	DefaultPlacementBackoff    = 250 * time.Millisecond
	DefaultPlacementBackoffMax = 15 * time.Second
	DefaultMaxRecreations      = 64
	DefaultLateBurst           = 100
	DefaultLogRate             = 20
)

// withDefaults fills the zero fields; WorkerTimeoutMax defaults to two
// worker timeouts (one widening) and is never below one.
func (p Pacing) withDefaults(workerTimeout time.Duration) Pacing {
	if p.PlacementBackoff <= 0 {
		p.PlacementBackoff = DefaultPlacementBackoff
	}
	if p.PlacementBackoffMax < p.PlacementBackoff {
		p.PlacementBackoffMax = max(DefaultPlacementBackoffMax, p.PlacementBackoff)
	}
	if p.MaxRecreations <= 0 {
		p.MaxRecreations = DefaultMaxRecreations
	}
	if p.LateBurst <= 0 {
		p.LateBurst = DefaultLateBurst
	}
	if p.WorkerTimeoutMax <= 0 {
		p.WorkerTimeoutMax = 2 * workerTimeout
	}
	p.WorkerTimeoutMax = max(p.WorkerTimeoutMax, workerTimeout)
	if p.LogRate <= 0 {
		p.LogRate = DefaultLogRate
	}
	return p
}

// backoff is the wait before attempt n+1 (n from 0), with up to a fifth
// of jitter so that workers refused together do not retry together.
func (p Pacing) backoff(n int) time.Duration {
	d := p.PlacementBackoff
	for i := 0; i < n && d < p.PlacementBackoffMax; i++ {
		d *= 2
	}
	d = min(d, p.PlacementBackoffMax)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// Reasons of a waiting worker (WorkerInfo.Reason, the worker_waiting event).
const (
	WaitNoCapacity = "no_capacity"
	WaitRecreate   = "recreate_backoff"
)

// waitState is a worker waiting for placement; loop-owned, under m.mu.
type waitState struct {
	selectors map[string]string
	tries     int
	// writing: its waiting record is being written; a placement waits for
	// the write, so the record's revision the worker is fenced by is the
	// last one.
	writing bool
	// recreate: re-created after a loss; counts against MaxRecreations.
	recreate bool
}

// waitEntry is one scheduled placement attempt.
type waitEntry struct {
	id    string
	epoch uint64
	at    time.Time
}

type waitHeap []waitEntry

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(a, b int) bool { return h[a].at.Before(h[b].at) }
func (h waitHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *waitHeap) Push(x any)        { *h = append(*h, x.(waitEntry)) }
func (h *waitHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// pick asks the placer for a node; no placer or no capacity is
// framework.ErrNoCapacity.
func (m *MasterRuntime) pick(typ string, selectors map[string]string) (string, error) {
	if m.deps.Placer == nil {
		return "", framework.ErrNoCapacity
	}
	node, err := m.deps.Placer.Pick(typ, selectors, "")
	if errors.Is(err, placement.ErrNoCapacity) {
		err = framework.ErrNoCapacity
	}
	return node, err
}

// startWaiting parks w (m.mu held) until a node can take it, first
// attempt after delay. Its record is written as waiting, so operators see
// it (drover workers), and one event and one (rate-limited) log line say
// why; retries that fail the same way say nothing more.
func (m *MasterRuntime) startWaiting(w *mworker, selectors map[string]string, reason string, delay time.Duration, recreate bool) {
	w.info.State, w.info.Reason, w.info.Node = string(kvstate.WorkerWaiting), reason, ""
	w.wait = &waitState{selectors: selectors, writing: true, recreate: recreate}
	w.selectors = selectors
	heap.Push(&m.waitq, waitEntry{id: w.info.ID, epoch: w.info.Epoch, at: time.Now().Add(delay)})
	select { // the loop may be scanning seldom: back to the short interval
	case m.scanNow <- struct{}{}:
	default:
	}
	m.deps.Metrics.WorkersWaiting.Inc()
	info := w.info
	m.event(api.EventWorkerWaiting, &info, reason)
	if m.workerLog.Allow(m.log) {
		m.log.Info("worker waiting for placement", zap.String("worker_id", info.ID),
			zap.Uint64("worker_epoch", info.Epoch), zap.String("reason", reason), zap.Duration("retry_in", delay))
	}
	m.pool.submit(func() { m.writeWaiting(info, selectors) })
}

// requeue puts a worker its chosen node refused for want of room back
// to waiting, and keeps the placer off that node for a backoff step.
func (m *MasterRuntime) requeue(info framework.WorkerInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.workers[info.ID]
	if w == nil || w.info.Epoch != info.Epoch || !w.info.Live() || w.wait != nil {
		return
	}
	recreate := w.recreating
	if w.recreating {
		w.recreating = false
		m.recreating--
	}
	d := m.pacing.backoff(1)
	if m.deps.Placer != nil {
		m.deps.Placer.Avoid(info.Node, d)
	}
	m.startWaiting(w, w.selectors, WaitNoCapacity, d, recreate)
}

// writeWaiting records a waiting worker, then lets its placement go ahead.
// It runs on the master's pool.
func (m *MasterRuntime) writeWaiting(info framework.WorkerInfo, selectors map[string]string) {
	if m.stopped() {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.deps.DispatchTimeout+5*time.Second)
	rec := recordFromInfo(m.job.ID, &info)
	rec.Selectors = selectors
	_, err := m.deps.Store.PutWorkerAsMaster(ctx, m.fence, rec)
	cancel()
	if m.checkWrite(err) {
		return
	}
	if err != nil && m.workerLog.Allow(m.log) {
		m.log.Warn("record waiting worker", zap.String("worker_id", info.ID), zap.Error(err))
	}
	m.mu.Lock()
	if w := m.workers[info.ID]; w != nil && w.info.Epoch == info.Epoch && w.wait != nil {
		w.wait.writing = false
	}
	m.mu.Unlock()
}

// placeWaiting retries the placements that are due, on the loop.
func (m *MasterRuntime) placeWaiting(now time.Time) {
	var placed []framework.WorkerInfo
	m.mu.Lock()
	var later []waitEntry
	for m.waitq.Len() > 0 && !m.waitq[0].at.After(now) {
		e := heap.Pop(&m.waitq).(waitEntry)
		w := m.workers[e.id]
		if w == nil || w.info.Epoch != e.epoch || w.wait == nil {
			continue
		}
		ws := w.wait
		if ws.writing || (ws.recreate && m.recreating >= m.pacing.MaxRecreations) {
			// Not a failed attempt: try again soon, same backoff step.
			later = append(later, waitEntry{id: e.id, epoch: e.epoch, at: now.Add(scanInterval)})
			continue
		}
		node, err := m.pick(w.info.Type, ws.selectors)
		if err != nil {
			ws.tries++
			m.deps.Metrics.PlacementRetries.Inc()
			if w.info.Reason != WaitNoCapacity {
				// A re-created worker now waits for capacity: say so once.
				w.info.Reason = WaitNoCapacity
				info := w.info
				m.event(api.EventWorkerWaiting, &info, WaitNoCapacity)
			}
			later = append(later, waitEntry{id: e.id, epoch: e.epoch, at: now.Add(m.pacing.backoff(ws.tries))})
			continue
		}
		w.wait = nil
		w.info.State, w.info.Reason, w.info.Node = string(kvstate.WorkerCreated), "", node
		// Heard of from now on, and told to the job by OnWorkerDispatched
		// before anything it sends.
		w.lastSeen, w.dispatched = now, false
		if ws.recreate {
			w.recreating = true
			m.recreating++
		}
		m.deps.Metrics.WorkersWaiting.Dec()
		placed = append(placed, w.info)
	}
	for _, e := range later {
		heap.Push(&m.waitq, e)
	}
	for _, info := range placed {
		m.dispatchLocked(info, nil)
	}
	m.mu.Unlock()
}

// lateWorkers returns the live, placed workers silent for longer than the
// master's patience (the worker timeout in force). Many workers silent at
// once is the master's own overload (its loop or its connection fell
// behind, its inbox overflowed, it was paused), not as many failures.
// Silences start a little apart, so "at once" counts the workers silent
// for over half the patience: LateBurst of them widen the patience
// (doubling, up to WorkerTimeoutMax) and none is declared lost that
// sweep. Declaring a worker lost late is safe: it fenced itself at
// worker_self_fence anyway (docs/failover.md, Timings).
func (m *MasterRuntime) lateWorkers(now time.Time) []*mworker {
	var late []*mworker
	silent := 0
	m.mu.Lock()
	for _, w := range m.workers {
		if !w.info.Live() || w.wait != nil || !w.dispatched {
			// Waiting, or its create still under way (bounded by the
			// dispatch timeout): its silence starts once it is created.
			continue
		}
		switch quiet := now.Sub(w.lastSeen); {
		case quiet > m.patience:
			late = append(late, w)
			silent++
		case quiet > m.patience/2:
			silent++
		}
	}
	m.mu.Unlock()
	switch {
	case silent >= m.pacing.LateBurst && m.patience < m.pacing.WorkerTimeoutMax:
		m.patience = min(2*m.patience, m.pacing.WorkerTimeoutMax)
		m.lastLate = now
		m.deps.Metrics.PatienceWidenings.Inc()
		m.log.Warn("many workers silent at once: overload, not failures; widening the worker timeout",
			zap.Int("silent", silent), zap.Int("late", len(late)), zap.Duration("worker_timeout", m.patience))
		return nil
	case silent > 0:
		m.lastLate = now
	case m.patience > m.deps.WorkerTimeout && now.Sub(m.lastLate) >= m.patience:
		// A whole (widened) timeout without a silent worker: back to normal.
		m.patience = m.deps.WorkerTimeout
		m.log.Info("workers on time again; worker timeout back to normal", zap.Duration("worker_timeout", m.patience))
	}
	return late
}

// LineLimit lets per-worker log lines through up to a rate (lines a
// second) and summarises the rest in one line, so 10,000 workers ending
// write a few dozen lines, not 10,000. A master has one; a worker node
// shares one among its workers.
type LineLimit struct {
	mu      sync.Mutex
	rate    int
	window  time.Time
	n       int
	dropped int
	// suppressed counts lines not written (drover_runtime_log_lines_suppressed_total).
	suppressed prometheus.Counter
}

// NewLineLimit returns a limit of rate lines a second (0: DefaultLogRate)
// counting what it suppresses in m.
func NewLineLimit(rate int, m *Metrics) *LineLimit {
	if rate <= 0 {
		rate = DefaultLogRate
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &LineLimit{rate: rate, suppressed: m.LogLinesSuppressed}
}

// Allow reports whether one more per-worker line may be written now. The
// first line of a new second first says how many the last ones dropped.
func (l *LineLimit) Allow(log *zap.Logger) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.window) >= time.Second {
		dropped := l.dropped
		l.window, l.n, l.dropped = now, 0, 0
		if dropped > 0 {
			l.mu.Unlock()
			log.Info("per-worker log lines summarised", zap.Int("suppressed", dropped))
			l.mu.Lock()
		}
	}
	defer l.mu.Unlock()
	if l.n < l.rate {
		l.n++
		return true
	}
	l.dropped++
	l.suppressed.Inc()
	return false
}

// Flush writes the summary of lines dropped so far, if any.
func (l *LineLimit) Flush(log *zap.Logger) {
	l.mu.Lock()
	dropped := l.dropped
	l.dropped = 0
	l.mu.Unlock()
	if dropped > 0 {
		log.Info("per-worker log lines summarised", zap.Int("suppressed", dropped))
	}
}

// endWaiting records the workers still waiting when the master exits as
// canceled (never placed, nothing to stop), so no record says waiting
// for a job that ended.
func (m *MasterRuntime) endWaiting(ctx context.Context, waiting []framework.WorkerInfo) {
	if len(waiting) == 0 {
		return
	}
	m.deps.Metrics.WorkersWaiting.Sub(float64(len(waiting)))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelDispatch)
	for _, info := range waiting {
		rec := recordFromInfo(m.job.ID, &info)
		rec.State, rec.Reason = kvstate.WorkerCanceled, offlineJobEnded
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, _ = m.deps.Store.PutWorkerAsMaster(ctx, m.fence, rec)
		}()
	}
	wg.Wait()
}
