package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
)

// WorkerDeps is what a worker node gives every worker it runs.
type WorkerDeps struct {
	// Registerer receives job authors' worker metrics (wrapped with job
	// and worker labels).
	Registerer prometheus.Registerer
	NC         *nats.Conn
	Store      WorkerState
	Log        *zap.Logger
	Metrics    *Metrics
	Node       string
	// Heartbeat is the interval of heartbeats to the master.
	Heartbeat time.Duration
	// Hub sends the node's workers' heartbeats and hands them their
	// job's broadcasts (required).
	Hub *Hub
	// SelfFence stops a worker that had no acknowledged heartbeat for this
	// long, strictly before its master declares it lost (the invariants of
	// docs/failover.md, Timings).
	SelfFence time.Duration
	// Storage is the job's bucket storage (WorkerHandle.Storage).
	Storage StorageConfig
	// CallbackTimeout bounds each call of job code (0: DefaultCallbackTimeout).
	CallbackTimeout time.Duration
	// Lines, shared by the node's workers, rate-limits their per-worker
	// log lines (nil: no limit).
	Lines *LineLimit
}

// WorkerSpec is one worker incarnation to run.
type WorkerSpec = wire.CreateWorker

// WorkerRuntime drives one worker incarnation.
type WorkerRuntime struct {
	*core
	deps WorkerDeps
	spec WorkerSpec
	// base carries the worker's own fields; logp adds the epoch of the
	// master it follows, swapped when it adopts a new master, so every
	// line names the master incarnation it happened under.
	base  *zap.Logger
	logp  atomic.Pointer[epochLogger]
	fence *kvstate.Fence
	// rec is the worker's record; recMu serialises its changes and
	// writes (the job's UpdateStatus, the runtime's exit and its deferred
	// online mark), and recWritten says the worker wrote it at least once.
	recMu      sync.Mutex
	rec        *kvstate.WorkerRecord
	recWritten bool
	impl       framework.Worker
	master     string // master inbox subject

	masterEpoch atomic.Uint64
	lastAck     atomic.Int64 // unix nanos
	msgs        *msgQueue
	leaving     atomic.Bool
	// selfFenced is closed (once) when acknowledgements stopped for SelfFence.
	selfFenced     chan struct{}
	selfFencedOnce sync.Once
}

// NewWorkerRuntime prepares a worker incarnation; Run starts it.
func NewWorkerRuntime(deps WorkerDeps, spec WorkerSpec) (*WorkerRuntime, error) {
	space := deps.Store.Space()
	master, err := space.MasterInbox(spec.Job)
	if err != nil {
		return nil, err
	}
	if deps.Hub == nil {
		return nil, errors.New("runtime: a worker needs its node's Hub")
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(nil)
	}
	w := &WorkerRuntime{
		deps:   deps,
		spec:   spec,
		master: master,
		// Lazy: most workers never log, and an encoded context cost each
		// of them a buffer (with the epoch's, about 2 KB).
		base: deps.Log.WithLazy(zap.String("job_id", spec.Job), zap.String("worker_id", spec.Worker),
			zap.Uint64("worker_epoch", spec.Epoch)),
		fence:      deps.Store.WorkerFence(spec.Job, spec.Worker, spec.Rev),
		msgs:       newMsgQueue(),
		selfFenced: make(chan struct{}),
	}
	w.core = newCore("worker", deps.Metrics, w.logger, deps.CallbackTimeout)
	w.masterEpoch.Store(spec.MasterEpoch)
	w.setLogEpoch(spec.MasterEpoch)
	w.lastAck.Store(time.Now().UnixNano())
	w.attach(deps.Store, spec.Job, w.fence, deps.Storage, deps.Registerer,
		prometheus.Labels{"job": spec.Job, "worker": spec.Worker})
	w.rec = &kvstate.WorkerRecord{Job: spec.Job, ID: spec.Worker, Type: spec.Type, Config: spec.Config,
		Node: deps.Node, Epoch: spec.Epoch, State: kvstate.WorkerCreated, PriorFailures: spec.PriorFailures}
	return w, nil
}

// logger returns the worker's logger: job_id, worker_id, worker_epoch and
// the epoch of the master it follows (the node adds node).
func (w *WorkerRuntime) logger() *zap.Logger { return w.logp.Load().log }

type epochLogger struct {
	epoch uint64
	log   *zap.Logger
}

// setLogEpoch moves the logger to a newer master epoch, never back.
func (w *WorkerRuntime) setLogEpoch(epoch uint64) {
	next := &epochLogger{epoch: epoch, log: w.base.WithLazy(zap.Uint64("epoch", epoch))}
	for {
		cur := w.logp.Load()
		if (cur != nil && cur.epoch >= epoch) || w.logp.CompareAndSwap(cur, next) {
			return
		}
	}
}

// Logger returns the incarnation's logger (job_id, worker_id,
// worker_epoch, the epoch of the master it follows, and the node's fields).
func (w *WorkerRuntime) Logger() *zap.Logger { return w.logger() }

// Spec returns the incarnation being run.
func (w *WorkerRuntime) Spec() WorkerSpec { return w.spec }

// Leave stops the worker and tells its master the node is leaving, so the
// master re-creates it elsewhere without waiting for a timeout.
func (w *WorkerRuntime) Leave() {
	w.leaving.Store(true)
	w.Stop()
}

func (w *WorkerRuntime) newMsg(kind string, data []byte) *nats.Msg {
	m := wire.NewMsg(w.master, kind, w.masterEpoch.Load(), data)
	m.Header.Set(wire.HdrWorker, w.spec.Worker)
	wire.SetUint(m, wire.HdrWorkerEpoch, w.spec.Epoch)
	m.Header.Set(wire.HdrNode, w.deps.Node)
	return m
}

// Run runs the worker until it exits (nil), is fenced (ErrFenced),
// fences itself (ErrSelfFenced) or is stopped (ErrStopped).
func (w *WorkerRuntime) Run(ctx context.Context, factory func(framework.WorkerHandle) (framework.Worker, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer w.reg.unregisterAll()
	space := w.deps.Store.Space()
	// The job's broadcasts come through the node's hub (Run's add below).
	inbox, err := space.WorkerInbox(w.spec.Job, w.spec.Worker)
	if err != nil {
		return err
	}
	// The node's lanes deliver both subscriptions: no goroutine of their
	// own per worker (lane).
	sub, err := w.deps.Hub.ctl.subscribe(inbox, w.onMsg)
	if err != nil {
		return err
	}
	defer w.deps.Hub.ctl.unsubscribe(sub)
	msgSubj, err := space.WorkerMessages(w.spec.Job, w.spec.Worker)
	if err != nil {
		return err
	}
	// Business messages on a lane of their own: a stop never waits
	// behind them.
	msub, err := w.deps.Hub.msgs.subscribe(msgSubj, w.onMessage)
	if err != nil {
		return err
	}
	defer w.deps.Hub.msgs.unsubscribe(msub)

	// The record says online from the worker's first write: its first
	// status or its end, or, when neither came within a heartbeat, a write
	// of its own (markOnline). A worker that ends at once, as most
	// short ones do, so costs one write less (docs/architecture.md, What a
	// job writes). Nothing depends on an early write: every write of a
	// superseded incarnation is refused by the fence, the first as any.
	w.rec.State = kvstate.WorkerOnline
	online := time.AfterFunc(w.deps.Heartbeat, func() { w.markOnline(ctx) })
	defer online.Stop()
	w.begin()
	defer w.end()

	if err := w.deps.Hub.add(w); err != nil {
		return err
	}
	defer w.deps.Hub.remove(w)

	if err := w.guard("NewWorker", func() (err error) {
		w.impl, err = factory(&workerHandle{w: w})
		return err
	}); err != nil {
		if api.ErrorCode(err) != api.CodeJobPanic && api.ErrorCode(err) != api.CodeJobHung {
			err = framework.Permanent(err)
		}
		return w.exit(framework.ExitFailed, err, nil)
	}
	if err := w.call("Init", func() error { return w.impl.Init(ctx) }); err != nil {
		return w.exit(framework.ExitFailed, err, nil)
	}
	tick := newAlignedTicker(tickInterval(w.impl, 100*time.Millisecond))
	defer tick.Stop()
	for {
		if req := w.takeExit(); req != nil {
			return w.exitStatus(req.reason, req.err, req.detail, req.status)
		}
		select {
		case <-ctx.Done():
			return w.stopped()
		case <-w.stopCh:
			return w.stopped()
		case <-w.selfFenced:
			w.deps.Metrics.SelfFenced.Inc()
			w.logger().Warn("worker fenced itself: no acknowledged heartbeat", zap.Duration("self_fence", w.deps.SelfFence))
			w.closeImpl()
			return ErrSelfFenced
		case err := <-w.fencedCh:
			return w.fenced(err)
		case <-w.msgs.ready:
			msg, ok := w.msgs.take()
			if !ok {
				continue
			}
			if err := w.call("OnMasterMessage", func() error {
				return w.impl.OnMasterMessage(ctx, msg.Header.Get(wire.HdrTopic), msg.Data)
			}); err != nil {
				return w.exit(framework.ExitFailed, err, nil)
			}
		case <-tick.C():
			tick.Next()
			if err := w.call("Tick", func() error { return w.impl.Tick(ctx) }); err != nil {
				return w.exit(framework.ExitFailed, err, nil)
			}
		}
	}
}

// selfFence stops the worker: its heartbeats went unacknowledged for
// SelfFence (the node's Hub checks at each beat, beside the job's
// loop, so a long Tick never silences the worker).
func (w *WorkerRuntime) selfFence() {
	w.selfFencedOnce.Do(func() { close(w.selfFenced) })
}

// acked takes a master's acknowledgement of a heartbeat; one from a
// master older than the one the worker follows does not count.
func (w *WorkerRuntime) acked(epoch uint64) {
	if epoch < w.masterEpoch.Load() {
		return
	}
	w.adopt(epoch)
	w.lastAck.Store(time.Now().UnixNano())
}

// onMsg runs on the node's control lane for the worker's inbox, or on
// the NATS goroutine of the job's broadcasts: a stop, a new master and
// the job's end (acknowledgements come through the hub, business
// messages through onMessage). It never waits: the lane is the node's.
func (w *WorkerRuntime) onMsg(msg *nats.Msg) {
	me := wire.Uint(msg, wire.HdrEpoch)
	known := w.masterEpoch.Load()
	if me < known {
		return // a stale master
	}
	switch wire.Kind(msg) {
	case wire.KindNewMaster:
		if w.adopt(me) {
			w.deps.Hub.now(w)
		}
	case wire.KindStop:
		if wire.Uint(msg, wire.HdrWorkerEpoch) >= w.spec.Epoch {
			if w.deps.Lines.Allow(w.deps.Log) {
				w.logger().Info("worker stopped by its master")
			}
			w.Stop()
		}
	case wire.KindJobEnded:
		w.Stop()
	}
}

// onMessage runs on the node's business-message lane: it queues a
// business message without ever waiting and tells the sender.
func (w *WorkerRuntime) onMessage(msg *nats.Msg) {
	if we := wire.Uint(msg, wire.HdrWorkerEpoch); we != w.spec.Epoch {
		answer(msg, api.Errorf(api.CodeFailedPrecondition, "worker %s runs incarnation %d, not %d", w.spec.Worker, w.spec.Epoch, we))
		return
	}
	if wire.Uint(msg, wire.HdrEpoch) < w.masterEpoch.Load() {
		answer(msg, api.Errorf(api.CodeFailedPrecondition, "sent by a master the worker no longer follows"))
		return
	}
	if w.isEnded() {
		answer(msg, api.Errorf(api.CodeFailedPrecondition, "worker %s has ended", w.spec.Worker))
		return
	}
	if w.msgs.put(msg) {
		answer(msg, nil)
	} else {
		answer(msg, api.Errorf(api.CodeUnavailable, "worker %s has %d messages waiting", w.spec.Worker, workerQueue))
	}
}

// adopt follows a newer master epoch; it reports whether it changed.
func (w *WorkerRuntime) adopt(epoch uint64) bool {
	for {
		cur := w.masterEpoch.Load()
		if epoch <= cur {
			return false
		}
		if w.masterEpoch.CompareAndSwap(cur, epoch) {
			w.setLogEpoch(epoch)
			if w.deps.Lines.Allow(w.deps.Log) {
				w.logger().Info("worker follows new master", zap.Uint64("previous_epoch", cur))
			}
			return true
		}
	}
}

func (w *WorkerRuntime) closeImpl() {
	if w.impl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.guard("Close", func() error { return w.impl.Close(ctx) }); err != nil {
		w.logger().Warn("worker close", zap.Error(err))
	}
}

func (w *WorkerRuntime) stopped() error {
	w.closeImpl()
	if w.leaving.Load() {
		// Tell the master now, so it re-creates this worker elsewhere at once.
		_ = w.deps.NC.PublishMsg(w.newMsg(wire.KindLeaving, nil))
	}
	return ErrStopped
}

func (w *WorkerRuntime) fenced(err error) error {
	err = w.fencedErr(err)
	w.closeImpl()
	return err
}

// putRecord applies change to the worker's record and writes it under
// the incarnation's fence.
func (w *WorkerRuntime) putRecord(ctx context.Context, change func(*kvstate.WorkerRecord)) error {
	w.recMu.Lock()
	defer w.recMu.Unlock()
	change(w.rec)
	err := w.deps.Store.PutWorkerAsWorker(ctx, w.fence, w.rec)
	if err == nil {
		w.recWritten = true
	}
	return err
}

// markOnline writes the record online unless the worker wrote it already.
// A refusal stops the incarnation (a newer one exists); another failure
// leaves the record created until the worker's next write.
func (w *WorkerRuntime) markOnline(ctx context.Context) {
	w.recMu.Lock()
	defer w.recMu.Unlock()
	if w.recWritten || ctx.Err() != nil {
		return
	}
	err := w.deps.Store.PutWorkerAsWorker(ctx, w.fence, w.rec)
	if err == nil {
		w.recWritten = true
		return
	}
	if !w.checkWrite(err) && ctx.Err() == nil {
		w.logger().Warn("record worker online", zap.Error(err))
	}
}

// exit persists the worker's end in its record and tells the master.
func (w *WorkerRuntime) exit(reason framework.ExitReason, cause error, detail any) error {
	return w.exitStatus(reason, cause, detail, nil)
}

// exitStatus is exit with a final status (nil: the last one stays), in the
// same write.
func (w *WorkerRuntime) exitStatus(reason framework.ExitReason, cause error, detail any, status json.RawMessage) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ex := wire.WorkerExit{State: string(reason), Status: status}
	if cause != nil {
		ex.Error = api.AsError(cause)
	}
	if b, err := marshalAny(detail); err == nil {
		ex.Detail = b
	}
	if err := w.putRecord(ctx, func(r *kvstate.WorkerRecord) {
		if status != nil {
			r.Status = status
		}
		r.State, r.Reason, r.Error, r.Detail = kvstate.WorkerState(reason), string(reason), ex.Error, ex.Detail
	}); err != nil {
		if w.checkWrite(err) {
			return w.fenced(err)
		}
		w.logger().Error("persist worker exit", zap.Error(err))
	}
	_ = w.deps.NC.PublishMsg(w.newMsg(wire.KindExit, wire.Marshal(ex)))
	if cause != nil || w.deps.Lines.Allow(w.deps.Log) {
		w.logger().Info("worker exited", zap.String("reason", string(reason)), zap.Error(cause))
	}
	w.closeImpl()
	return nil
}

// workerHandle is the WorkerHandle of one WorkerRuntime.
type workerHandle struct{ w *WorkerRuntime }

func (h *workerHandle) JobID() string           { return h.w.spec.Job }
func (h *workerHandle) WorkerID() string        { return h.w.spec.Worker }
func (h *workerHandle) Epoch() uint64           { return h.w.spec.Epoch }
func (h *workerHandle) Config() json.RawMessage { return h.w.spec.Config }
func (h *workerHandle) KV() framework.KV        { return h.w.kv }
func (h *workerHandle) Logger() *zap.Logger     { return h.w.logger() }

func (h *workerHandle) Metrics() prometheus.Registerer { return h.w.reg }

func (h *workerHandle) UpdateStatus(ctx context.Context, status any) error {
	b, err := marshalAny(status)
	if err != nil {
		return err
	}
	if h.w.isEnded() {
		return errEnded
	}
	if err := h.w.putRecord(ctx, func(r *kvstate.WorkerRecord) { r.Status = b }); err != nil {
		h.w.checkWrite(err)
		return err
	}
	return h.w.deps.NC.PublishMsg(h.w.newMsg(wire.KindStatus, b))
}

func (h *workerHandle) SendMessage(ctx context.Context, topic string, payload []byte) error {
	if h.w.isEnded() {
		return errEnded
	}
	subj, err := h.w.deps.Store.Space().MasterMessages(h.w.spec.Job)
	if err != nil {
		return err
	}
	m := h.w.newMsg(wire.KindMessage, payload)
	m.Subject = subj
	m.Header.Set(wire.HdrTopic, topic)
	return send(ctx, h.w.deps.NC, m, func() error {
		if h.w.isEnded() {
			return errEnded
		}
		return nil
	})
}

func (h *workerHandle) Exit(reason framework.ExitReason, err error, detail any) {
	h.w.requestExit(reason, err, detail)
}

func (h *workerHandle) ExitWithStatus(reason framework.ExitReason, err error, detail, status any) {
	b, merr := marshalAny(status)
	if merr != nil {
		// As UpdateStatus would have refused it: the last status stays.
		h.w.logger().Warn("exit status not JSON", zap.Error(merr))
		b = nil
	}
	h.w.requestExitStatus(reason, err, detail, b)
}
