package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/placement"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// masterHandle is the MasterHandle of one MasterRuntime.
type masterHandle struct{ m *MasterRuntime }

func (h *masterHandle) JobID() string                  { return h.m.job.ID }
func (h *masterHandle) JobType() string                { return h.m.job.Type }
func (h *masterHandle) Config() json.RawMessage        { return h.m.job.Config }
func (h *masterHandle) Epoch() uint64                  { return h.m.epoch }
func (h *masterHandle) KV() framework.KV               { return h.m.kv }
func (h *masterHandle) Logger() *zap.Logger            { return h.m.log }
func (h *masterHandle) Metrics() prometheus.Registerer { return h.m.reg }
func (h *masterHandle) IsMasterReady() bool            { return h.m.ready.Load() }

func (h *masterHandle) Workers() []framework.WorkerInfo {
	h.m.mu.Lock()
	out := make([]framework.WorkerInfo, 0, len(h.m.workers))
	for _, w := range h.m.workers {
		out = append(out, w.info)
	}
	h.m.mu.Unlock()
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

func (h *masterHandle) Worker(id string) (framework.WorkerInfo, bool) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	w, ok := h.m.workers[id]
	if !ok {
		return framework.WorkerInfo{}, false
	}
	return w.info, true
}

func (h *masterHandle) UpdateJobStatus(ctx context.Context, detail any) error {
	b, err := marshalAny(detail)
	if err != nil {
		return err
	}
	if h.m.isEnded() {
		return errEnded
	}
	h.m.rec.Detail = b
	err = h.m.deps.Store.PutMaster(ctx, h.m.fence, h.m.rec)
	h.m.checkWrite(err)
	return err
}

func (h *masterHandle) SendMessage(ctx context.Context, workerID, topic string, payload []byte) error {
	h.m.mu.Lock()
	w, ok := h.m.workers[workerID]
	if !ok || !w.info.Live() {
		h.m.mu.Unlock()
		return fmt.Errorf("%w: %s", framework.ErrUnknownWorker, workerID)
	}
	epoch := w.info.Epoch
	h.m.mu.Unlock()
	subj, err := h.m.space.WorkerMessages(h.m.job.ID, workerID)
	if err != nil {
		return err
	}
	msg := wire.NewMsg(subj, wire.KindMessage, h.m.epoch, payload)
	wire.SetUint(msg, wire.HdrWorkerEpoch, epoch)
	msg.Header.Set(wire.HdrTopic, topic)
	ctx, cancel := withSendTimeout(ctx)
	defer cancel()
	if err := h.m.sends.acquire(ctx); err != nil {
		return err
	}
	defer h.m.sends.release()
	return send(ctx, h.m.deps.NC, msg, func() error {
		// Wait for a worker that is still to come, not for one that ended.
		if h.m.isEnded() {
			return errEnded
		}
		h.m.mu.Lock()
		defer h.m.mu.Unlock()
		if w := h.m.workers[workerID]; w == nil || w.info.Epoch != epoch || !w.info.Live() {
			return fmt.Errorf("%w: worker %s incarnation %d has ended", framework.ErrNotDelivered, workerID, epoch)
		}
		return nil
	})
}

func (h *masterHandle) Exit(reason framework.ExitReason, err error, detail any) {
	h.m.requestExit(reason, err, detail)
}

func (h *masterHandle) CreateWorker(ctx context.Context, workerType string, config any, opts ...framework.CreateOption) (string, error) {
	m := h.m
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var o framework.CreateOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return "", err
		}
	}
	cfg, err := marshalAny(config)
	if err != nil {
		return "", err
	}
	if o.Selectors == nil {
		o.Selectors = m.job.Selectors // inherited; WithSelectors(map{}) opts out
	}
	if err := placement.ValidateSelectors(o.Selectors); err != nil {
		return "", api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.takeExit() != nil {
		return "", framework.ErrExited
	}
	id := o.ID
	if id == "" {
		m.seq++
		id = fmt.Sprintf("w%d-%d", m.epoch, m.seq)
	}
	if err := topics.ValidateID("worker", id); err != nil {
		return "", err
	}
	if w := m.workers[id]; w != nil && w.info.Live() {
		return "", fmt.Errorf("%w: %s", framework.ErrWorkerExists, id)
	}
	epoch := m.epochs[id] + 1
	m.epochs[id] = epoch
	failures := 0
	if prev := m.workers[id]; prev != nil {
		failures = prev.info.Failures
	}
	w := &mworker{
		info: framework.WorkerInfo{ID: id, Type: workerType, Epoch: epoch, State: string(kvstate.WorkerCreated),
			Config: cfg, Failures: failures},
		lastSeen: time.Now(),
	}
	w.selectors = o.Selectors
	m.workers[id] = w
	m.deps.Metrics.WorkerCreations.Inc()
	// A worker whose previous incarnation was lost waits out a backoff
	// first; one no node can take waits for capacity. Either way the
	// runtime retries, not the job (pacing.go).
	if n := m.losses[id]; n > 0 {
		m.startWaiting(w, o.Selectors, WaitRecreate, m.pacing.backoff(n-1), true)
		return id, nil
	}
	node, perr := m.pick(workerType, o.Selectors)
	if errors.Is(perr, framework.ErrNoCapacity) {
		m.startWaiting(w, o.Selectors, WaitNoCapacity, m.pacing.backoff(0), false)
		return id, nil
	}
	w.info.Node = node
	m.dispatchLocked(w.info, perr)
	return id, nil
}

// afterCreate, set by tests only, runs once a create request is answered
// and may replace its outcome: it widens the window in which a worker runs
// before its master knows, or fails a create that succeeded.
var afterCreate func(error) error

// dropHeartbeats, set by tests only, makes masters ignore heartbeats.
var dropHeartbeats atomic.Bool

// dispatchLocked places a worker incarnation: place runs on the master's
// pool, at once or after the reported-mark write of the worker's previous
// incarnation, which must land first. m.mu is held.
func (m *MasterRuntime) dispatchLocked(info framework.WorkerInfo, err error) {
	if m.marks[info.ID] == nil {
		m.pool.submit(func() { m.place(info, err) })
		return
	}
	go func() {
		if m.awaitMark(info.ID) {
			m.pool.submit(func() { m.place(info, err) })
		}
	}()
}

// place writes the worker record and asks the chosen node to start it,
// then reports the outcome on the loop (OnWorkerDispatched). It runs on the
// master's pool: at most maxParallelDispatch record writes at once.
func (m *MasterRuntime) place(info framework.WorkerInfo, err error) {
	if m.stopped() {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.deps.DispatchTimeout+5*time.Second)
	defer cancel()
	var rev uint64
	if err == nil {
		rec := recordFromInfo(m.job.ID, &info)
		rev, err = m.deps.Store.PutWorkerAsMaster(ctx, m.fence, rec)
		if m.checkWrite(err) {
			return
		}
	}
	if err == nil {
		err = m.requestCreate(ctx, info, rev)
		if afterCreate != nil {
			err = afterCreate(err)
		}
		if api.ErrorCode(err) == api.CodeUnavailable {
			// The node is full or leaving: the placer's view was behind.
			// Not a failure of the worker: it waits for capacity again.
			m.post(func() { m.requeue(info) })
			return
		}
		if err != nil {
			// The next placement (the job's retry) goes elsewhere.
			if m.deps.Placer != nil {
				m.deps.Placer.Avoid(info.Node, placement.AvoidAfterFailure)
			}
			// Record the failure so a later recovery does not wait for it.
			rec := recordFromInfo(m.job.ID, &info)
			rec.State, rec.Reason = kvstate.WorkerFailed, framework.OfflineDispatchFailed
			if _, werr := m.deps.Store.PutWorkerAsMaster(ctx, m.fence, rec); m.checkWrite(werr) {
				return
			}
		}
	}
	m.post(func() { m.dispatched(info.ID, info.Epoch, err) })
}

func (m *MasterRuntime) requestCreate(ctx context.Context, info framework.WorkerInfo, rev uint64) error {
	subj, err := m.space.NodeControl(topics.KindWorker, info.Node)
	if err != nil {
		return err
	}
	req := wire.NewMsg(subj, wire.KindCreate, m.epoch, wire.Marshal(wire.CreateWorker{
		Job: m.job.ID, Worker: info.ID, Type: info.Type, Config: info.Config,
		Epoch: info.Epoch, Rev: rev, MasterEpoch: m.epoch, PriorFailures: info.Failures,
	}))
	rctx, cancel := context.WithTimeout(ctx, m.deps.DispatchTimeout)
	defer cancel()
	resp, err := m.deps.NC.RequestMsgWithContext(rctx, req)
	if err != nil {
		return fmt.Errorf("create worker %s on %s: %w", info.ID, info.Node, err)
	}
	var rep wire.ControlReply
	if err := json.Unmarshal(resp.Data, &rep); err != nil {
		return fmt.Errorf("create worker %s: bad reply: %w", info.ID, err)
	}
	if !rep.OK {
		if rep.Error != nil {
			return rep.Error
		}
		return fmt.Errorf("create worker %s refused", info.ID)
	}
	return nil
}

// dispatched delivers a placement outcome to the job on the loop.
func (m *MasterRuntime) dispatched(id string, epoch uint64, err error) {
	m.mu.Lock()
	w := m.workers[id]
	if w == nil || w.info.Epoch != epoch {
		m.mu.Unlock()
		return
	}
	if err != nil && w.info.Live() {
		w.info.State, w.info.Reason = string(kvstate.WorkerFailed), framework.OfflineDispatchFailed
	}
	if w.recreating {
		w.recreating = false
		m.recreating--
	}
	w.dispatched = true
	if err == nil {
		// Heard of from its creation on: a create that queued behind
		// thousands of others is not a silence.
		w.lastSeen = time.Now()
	}
	info, attached, held := w.info, w.attached, w.held
	w.held = nil
	m.mu.Unlock()
	if err != nil && attached {
		// The create request failed (a timeout) but the incarnation runs:
		// it is not wanted, as the job was told.
		m.stopWorker(id, epoch)
	}
	if err != nil {
		// The job hears of it through OnWorkerDispatched; operators through
		// the same offline event and metric as any worker that ended.
		m.deps.Metrics.WorkerOfflines.WithLabelValues(framework.OfflineDispatchFailed).Inc()
		m.event(api.EventWorkerOffline, &info, framework.OfflineDispatchFailed)
		if m.workerLog.Allow(m.log) {
			m.log.Warn("worker dispatch failed", zap.String("worker_id", id), zap.Uint64("worker_epoch", epoch),
				zap.String("worker_node", info.Node), zap.Error(err))
		}
	}
	if cerr := m.call("OnWorkerDispatched", func() error { return m.impl.OnWorkerDispatched(info, err) }); cerr != nil {
		m.requestExit(framework.ExitFailed, cerr, nil)
		return
	}
	if err != nil {
		m.markReported(info)
		return
	}
	// Now what waited for the dispatch outcome: online, then the worker's
	// messages in the order they came.
	if attached {
		if cerr := m.announce(id); cerr != nil {
			m.requestExit(framework.ExitFailed, cerr, nil)
			return
		}
	}
	for _, msg := range held {
		if cerr := m.handle(m.ctx, msg); cerr != nil {
			m.requestExit(framework.ExitFailed, cerr, nil)
			return
		}
	}
}
