// Package runtime drives job incarnations: one master (MasterRuntime) or
// one worker (WorkerRuntime) of a job type registered in a
// framework.Registry, with their heartbeats, fenced writes, storage,
// metrics and HTTP routes. The job-master and worker node services run
// them; job authors never see this package.
package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/placement"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// MasterDeps is what a job-master node gives every master it runs.
type MasterDeps struct {
	NC     *nats.Conn
	Store  MasterState
	Placer *placement.Placer
	Log    *zap.Logger
	// Registerer receives job authors' metrics (wrapped with job labels).
	Registerer prometheus.Registerer
	Metrics    *Metrics
	Node       string
	// WorkerTimeout is how long a worker may stay silent before it is
	// declared lost (docs/failover.md, Timings).
	WorkerTimeout time.Duration
	// DispatchTimeout bounds the create request to a worker node.
	DispatchTimeout time.Duration
	// Storage is the job's bucket storage (MasterHandle.Storage).
	Storage StorageConfig
	// CallbackTimeout bounds each call of job code (0: DefaultCallbackTimeout).
	CallbackTimeout time.Duration
	// Pacing paces placements and reads late workers under load.
	Pacing Pacing
}

// Assignment is one master incarnation to run: the job, its epoch, and the
// master record revision the leader wrote with it (the fence).
type Assignment struct {
	Job   api.Job
	Epoch uint64
	Rev   uint64
	// Master is the master record at Rev, if the caller has just read it
	// (a node checks it before it accepts an assignment): Run then starts
	// from it instead of reading it again.
	Master *kvstate.MasterRecord
}

// Errors a Run ends with besides the job's own.
var (
	ErrStopped    = errors.New("runtime: stopped")
	ErrSelfFenced = errors.New("runtime: no acknowledged heartbeat within worker_self_fence")
)

// scanInterval is how often a master checks worker timeouts and readiness.
const scanInterval = 50 * time.Millisecond

// maxParallelDispatch bounds concurrent worker placements of one master.
// Each is a record write and a node's answer: at 128 in flight, placing
// 10,000 workers was bound by those round trips (4,258 placements/s on warm
// nodes), at 512 it is bound by CPU (5,958/s; 1,024: 5,076/s).
const maxParallelDispatch = 512

// MasterRuntime drives one master incarnation: the job type's JobMaster,
// its workers' heartbeats and its fenced writes.
type MasterRuntime struct {
	*core
	deps  MasterDeps
	jt    framework.JobType
	job   api.Job
	epoch uint64
	fence *kvstate.Fence
	rec   *kvstate.MasterRecord
	// preloaded is the assignment's master record, read by the node.
	preloaded *kvstate.MasterRecord
	log       *zap.Logger
	space     topics.Space
	inbox     string
	impl      framework.JobMaster
	// checkingClaim: a message's claim of a newer epoch is being checked.
	checkingClaim atomic.Bool

	mu      sync.Mutex
	workers map[string]*mworker
	// epochs remembers the last epoch of every worker id, ended or not.
	epochs map[string]uint64
	// marks holds the in-flight writes that record an ended incarnation as
	// reported (markReported), by worker id.
	marks map[string]chan struct{}
	queue []*nats.Msg
	// queuedMsgs counts the business messages in queue (at most masterQueue).
	queuedMsgs int
	online     []string
	seq        int
	// loaded: the worker records are read. Until then a heartbeat is from
	// a worker the master does not know yet, not from a stranger to stop.
	loaded bool

	signal chan struct{}
	// calls carries work posted to the loop by the incarnation's other
	// goroutines (placement outcomes, forwarded HTTP requests), never by
	// the loop itself: when it is full a poster waits for the loop. Short:
	// its buffer is allocated (and scanned by the collector) with every
	// incarnation, a thousand at once when a node's masters move.
	calls chan func()
	// scanNow asks the loop to scan at the short interval again (a worker
	// started waiting for placement while the loop scanned seldom).
	scanNow chan struct{}
	// pool runs the worker-record writes and create requests, at most
	// maxParallelDispatch at once.
	pool *runPool
	// sends bounds the business messages awaiting their answer.
	sends    *inflight
	ready    atomic.Bool
	canceled bool
	started  time.Time
	// lastSweep is when scan last looked for silent workers.
	lastSweep time.Time
	// firstOnline: a first start waiting for its first worker online.
	firstOnline bool
	ctx         context.Context

	// Waiting and overload (pacing.go). waitq, recreating and losses are
	// under mu; patience and lastLate are the loop's.
	pacing     Pacing
	waitq      waitHeap
	recreating int
	// losses counts the incarnations of each worker id lost (timeout,
	// node leaving): the next one waits out a backoff first.
	losses map[string]int
	// patience is the worker timeout in force, widened under overload.
	patience  time.Duration
	lastLate  time.Time
	workerLog *LineLimit
}

type mworker struct {
	info     framework.WorkerInfo
	lastSeen time.Time
	// attached: this incarnation heartbeated to this master.
	attached bool
	// announced: OnWorkerOnline was delivered for this incarnation.
	announced bool
	// recovering: loaded at recovery, readiness waits for it.
	recovering bool
	// dispatched: OnWorkerDispatched was delivered (or the worker was
	// recovered). Until then OnWorkerOnline and the worker's messages wait
	// in held, so the job hears of a worker in order.
	dispatched bool
	held       []*nats.Msg
	// wait is set while the worker waits for placement (pacing.go).
	wait *waitState
	// recreating: a re-creation after a loss, being dispatched.
	recreating bool
	selectors  map[string]string
}

// NewMasterRuntime prepares a master incarnation; Run starts it.
func NewMasterRuntime(deps MasterDeps, jt framework.JobType, a Assignment) (*MasterRuntime, error) {
	space := deps.Store.Space()
	inbox, err := space.MasterInbox(a.Job.ID)
	if err != nil {
		return nil, err
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(nil)
	}
	m := &MasterRuntime{
		deps:      deps,
		jt:        jt,
		job:       a.Job,
		epoch:     a.Epoch,
		fence:     deps.Store.MasterFence(a.Job.ID, a.Rev),
		preloaded: a.Master,
		log: deps.Log.With(zap.String("job_id", a.Job.ID), zap.Uint64("epoch", a.Epoch),
			zap.String("job_type", a.Job.Type)),
		space:   space,
		inbox:   inbox,
		workers: map[string]*mworker{},
		epochs:  map[string]uint64{},
		marks:   map[string]chan struct{}{},
		signal:  make(chan struct{}, 1),
		scanNow: make(chan struct{}, 1),
		calls:   make(chan func(), 64),
		pool:    newRunPool(maxParallelDispatch),
		sends:   newInflight(maxSendsInFlight),
		pacing:  deps.Pacing.withDefaults(deps.WorkerTimeout),
		losses:  map[string]int{},
	}
	m.patience = deps.WorkerTimeout
	m.workerLog = NewLineLimit(m.pacing.LogRate, deps.Metrics)
	m.core = newCore("master", deps.Metrics, func() *zap.Logger { return m.log }, deps.CallbackTimeout)
	m.onExit = m.wake
	m.attach(deps.Store, a.Job.ID, m.fence, deps.Storage, deps.Registerer,
		prometheus.Labels{"job_type": a.Job.Type, "job": a.Job.ID})
	return m, nil
}

// Pending limits of a master's inbox subscription.
const (
	inboxPendingMsgs  = 1 << 20
	inboxPendingBytes = 256 << 20
)

// Epoch returns the incarnation's epoch.
func (m *MasterRuntime) Epoch() uint64 { return m.epoch }

// JobID returns the job id.
func (m *MasterRuntime) JobID() string { return m.job.ID }

// post runs f on the master's loop.
func (m *MasterRuntime) post(f func()) {
	select {
	case m.calls <- f:
	case <-m.stopCh:
	}
}

func (m *MasterRuntime) wake() {
	select {
	case m.signal <- struct{}{}:
	default:
	}
}

// Run runs the master until it exits (nil), is fenced (ErrFenced) or is
// stopped (ErrStopped).
func (m *MasterRuntime) Run(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.ctx = ctx
	m.started = time.Now()
	defer m.reg.unregisterAll()
	m.begin()
	defer m.end()

	rec, rev := m.preloaded, m.fence.Rev()
	if rec == nil {
		if rec, rev, err = m.deps.Store.GetMaster(ctx, m.job.ID); err != nil {
			return fmt.Errorf("load master record: %w", err)
		}
	}
	if rec.Epoch != m.epoch || rev != m.fence.Rev() {
		m.log.Warn("master record moved before start", zap.Uint64("record_epoch", rec.Epoch))
		return fmt.Errorf("%w: record at epoch %d", framework.ErrFenced, rec.Epoch)
	}
	m.rec = rec

	sub, err := m.deps.NC.Subscribe(m.inbox, m.onInbox)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	// Bounded, generously: every worker's heartbeat lands here, and a
	// stall of a few seconds at 10,000 workers queues tens of thousands;
	// beyond the bound the connection drops messages (a slow-consumer
	// error in the log) instead of the node running out of memory.
	if err := sub.SetPendingLimits(inboxPendingMsgs, inboxPendingBytes); err != nil {
		return err
	}
	// Heartbeats on a subscription of their own: its own pending queue
	// and delivery goroutine, never behind the inbox's status and exit
	// messages (answered on it, like those the inbox still gets).
	hbSubj, err := m.space.MasterHeartbeats(m.job.ID)
	if err != nil {
		return err
	}
	hsub, err := m.deps.NC.Subscribe(hbSubj, m.onInbox)
	if err != nil {
		return err
	}
	defer func() { _ = hsub.Unsubscribe() }()
	if err := hsub.SetPendingLimits(inboxPendingMsgs, inboxPendingBytes); err != nil {
		return err
	}
	msgSubj, err := m.space.MasterMessages(m.job.ID)
	if err != nil {
		return err
	}
	msub, err := m.deps.NC.Subscribe(msgSubj, m.onMessage)
	if err != nil {
		return err
	}
	defer func() { _ = msub.Unsubscribe() }()

	if err := m.guard("NewMaster", func() (err error) {
		m.impl, err = m.jt.NewMaster(&masterHandle{m: m})
		return err
	}); err != nil {
		if api.ErrorCode(err) != api.CodeJobPanic && api.ErrorCode(err) != api.CodeJobHung {
			err = framework.Permanent(fmt.Errorf("build master: %w", err))
		}
		return m.exit(framework.ExitFailed, err, nil)
	}
	router := newRouter()
	if err := m.guard("OnOpenAPIInitialized", func() error { m.impl.OnOpenAPIInitialized(router); return nil }); err != nil {
		return m.exit(framework.ExitFailed, err, nil)
	}
	if httpSubj, err := m.space.MasterHTTP(m.job.ID); err == nil {
		hs, err := m.deps.NC.Subscribe(httpSubj, func(msg *nats.Msg) { m.serveHTTP(router, msg) })
		if err == nil {
			defer func() { _ = hs.Unsubscribe() }()
		}
	}

	// The first incarnation has no worker records to load: they are only
	// written under a master's fence, and there was none before it. Not
	// reading saves a consumer create and delete per job on the server.
	var workers []kvstate.WorkerEntry
	if f := beforeLoadWorkers.Load(); f != nil {
		(*f)()
	}
	if m.epoch > 1 {
		if workers, err = m.deps.Store.ListWorkers(ctx, m.job.ID); err != nil {
			return fmt.Errorf("load worker records: %w", err)
		}
	}
	recovering := m.rec.Initialized
	var ended []framework.WorkerInfo
	m.mu.Lock()
	m.loaded = true
	for _, we := range workers {
		r := we.Record
		m.epochs[r.ID] = r.Epoch
		if !recovering {
			continue // leftovers of an Init that never completed: re-created by Init
		}
		info := infoFromRecord(&r)
		w := &mworker{info: info, lastSeen: time.Now(), recovering: info.Live(), dispatched: true}
		m.workers[r.ID] = w
		if r.State == kvstate.WorkerWaiting {
			// Never placed: nothing to wait for, placing resumes at once,
			// with the selectors the record kept (a record written before
			// they were kept gets the job's).
			w.recovering = false
			sel := r.Selectors
			if sel == nil {
				sel = m.job.Selectors
			}
			m.startWaiting(w, sel, r.Reason, 0, r.Reason == WaitRecreate)
		}
		if !info.Live() && !r.Reported {
			ended = append(ended, info)
		}
	}
	m.mu.Unlock()

	if recovering {
		m.deps.Metrics.MasterRecoveries.Inc()
		m.log.Info("master recovering", zap.Int("workers", len(workers)))
		// Tell workers at once, so they re-attach without waiting a heartbeat.
		if b, err := m.space.WorkersBroadcast(m.job.ID); err == nil {
			_ = m.deps.NC.PublishMsg(wire.NewMsg(b, wire.KindNewMaster, m.epoch, nil))
		}
		if err := m.call("OnMasterRecovered", func() error { return m.impl.OnMasterRecovered(ctx) }); err != nil {
			return m.fail(err)
		}
	} else {
		// A first start has no worker to wait for: it is ready before Init,
		// so a job that gates CreateWorker on readiness places its workers
		// in Init instead of one tick later.
		m.checkReady()
		m.firstOnline = true
		m.log.Info("master initializing")
		if err := m.call("Init", func() error { return m.impl.Init(ctx) }); err != nil {
			return m.fail(err)
		}
		m.rec.Initialized = true
	}
	if req := m.takeExit(); req != nil {
		return m.exit(req.reason, req.err, req.detail)
	}
	m.rec.State = kvstate.MasterRunning
	if err := m.deps.Store.PutMaster(ctx, m.fence, m.rec); err != nil {
		return m.writeFailed(err)
	}
	for _, info := range ended {
		if !m.known(info) {
			continue // removed (or re-created) by OnMasterRecovered
		}
		// Reported like a live loss (event, metric), at this epoch: the
		// previous master died before it recorded that it had. Ended
		// incarnations it did report are not delivered again.
		if err := m.offline(info, offlineReason(info)); err != nil {
			return m.fail(err)
		}
	}
	m.checkReady()
	return m.loop(ctx)
}

// beforeLoadWorkers, set by tests only, runs between a master's inbox
// subscription and its read of the worker records.
var beforeLoadWorkers atomic.Pointer[func()]

func (m *MasterRuntime) loop(ctx context.Context) error {
	tick := newAlignedTicker(tickInterval(m.impl, 100*time.Millisecond))
	defer tick.Stop()
	scan := time.NewTimer(scanInterval)
	defer scan.Stop()
	for {
		if req := m.takeExit(); req != nil {
			return m.exit(req.reason, req.err, req.detail)
		}
		select {
		case <-ctx.Done():
			m.stopImpl()
			return ErrStopped
		case <-m.stopCh:
			m.log.Info("master stopped")
			m.stopImpl()
			return ErrStopped
		case err := <-m.fencedCh:
			return m.fenced(err)
		case f := <-m.calls:
			f()
		case <-m.signal:
			if err := m.drain(ctx); err != nil {
				return m.fail(err)
			}
		case <-scan.C:
			if err := m.scan(ctx); err != nil {
				return m.fail(err)
			}
			scan.Reset(m.scanEvery())
		case <-m.scanNow:
			scan.Reset(scanInterval)
		case <-tick.C():
			tick.Next()
			if err := m.call("Tick", func() error { return m.impl.Tick(ctx) }); err != nil {
				return m.fail(err)
			}
		}
	}
}

// claimedNewer checks a message's claim that master epoch e exists
// against the master record before stopping: a worker that follows a
// newer master proves this one stale, but a forged header proves nothing.
// One check runs at a time; claims arriving meanwhile are dropped (the
// next message repeats them).
func (m *MasterRuntime) claimedNewer(e uint64) {
	if !m.checkingClaim.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer m.checkingClaim.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rec, _, err := m.deps.Store.GetMaster(ctx, m.job.ID)
		switch {
		case err == nil && rec.Epoch > m.epoch:
			m.stale(fmt.Errorf("%w: a worker follows master epoch %d, the record holds %d", kvstate.ErrStaleEpoch, e, rec.Epoch))
		case err == nil:
			m.log.Warn("ignored a claim of a newer master epoch: the master record holds this one",
				zap.Uint64("claimed_epoch", e), zap.Uint64("record_epoch", rec.Epoch))
		case errors.Is(err, kvstate.ErrNotFound):
			m.stale(fmt.Errorf("%w: the master record is gone", kvstate.ErrStaleEpoch))
		default:
			// Unknown: the master timeout and the write fences decide.
			m.log.Warn("could not check a claim of a newer master epoch", zap.Uint64("claimed_epoch", e), zap.Error(err))
		}
	}()
}

// onInbox runs on the NATS goroutine: heartbeats are answered here so a
// busy job callback never starves them; everything else goes to the loop.
func (m *MasterRuntime) onInbox(msg *nats.Msg) {
	kind := wire.Kind(msg)
	if kind == wire.KindCancel || kind == "" {
		m.enqueue(msg)
		return
	}
	if kind == wire.KindMessage {
		return // business messages come by request on MasterMessages, bounded
	}
	if kind == wire.KindHeartbeat {
		m.onHeartbeats(msg) // each entry carries the master epoch it follows
		return
	}
	if me := wire.Uint(msg, wire.HdrEpoch); me > m.epoch {
		m.claimedNewer(me)
		return
	}
	// Any message proves its sender alive when it arrives, not when the
	// loop gets to it: an exit queued behind a busy loop is not a silence.
	m.touch(msg.Header.Get(wire.HdrWorker), wire.Uint(msg, wire.HdrWorkerEpoch))
	m.enqueue(msg)
}

// onHeartbeats handles a worker node's heartbeats of this job's workers
// and answers, in one message to the node, those it acknowledges. A batch
// that is not this job's, or longer than any node sends, is dropped.
func (m *MasterRuntime) onHeartbeats(msg *nats.Msg) {
	var b wire.HeartbeatBatch
	if json.Unmarshal(msg.Data, &b) != nil || b.Job != m.job.ID || len(b.Workers) > wire.MaxHeartbeatBatch {
		return
	}
	if dropHeartbeats.Load() {
		return
	}
	m.deps.Metrics.HeartbeatsReceived.Add(float64(len(b.Workers)))
	acks := b.Workers[:0]
	var claim uint64
	stops := 0
	for _, h := range b.Workers {
		if h.Master > m.epoch {
			claim = max(claim, h.Master)
			continue
		}
		switch ack, stop := m.beat(h.Worker, h.Epoch); {
		case ack:
			acks = append(acks, wire.Heartbeat{Worker: h.Worker, Epoch: h.Epoch})
		case stop && stops < maxStopsPerBatch:
			stops++
			m.stopWorker(h.Worker, h.Epoch)
		}
	}
	if claim > 0 {
		m.claimedNewer(claim)
	}
	if len(acks) == 0 || msg.Reply == "" {
		return
	}
	b.Workers = acks
	_ = msg.RespondMsg(wire.NewMsg(msg.Reply, wire.KindAck, m.epoch, wire.Marshal(b)))
}

// maxStopsPerBatch bounds the stop messages one heartbeat message makes
// its master send: a worker identity's forged batch of a thousand unknown
// workers is not a thousand messages; a real unknown incarnation beyond it
// is told on a later heartbeat.
const maxStopsPerBatch = 16

// beat records worker incarnation id/we's heartbeat and reports whether
// to acknowledge it, or to tell it to stop (an incarnation the master does
// not run, and no newer one it is still creating).
func (m *MasterRuntime) beat(id string, we uint64) (ack, stop bool) {
	m.mu.Lock()
	if !m.loaded {
		// Subscribed before the records are read (so no heartbeat sent
		// after the read is missed): the worker heartbeats again, and the
		// recovery's new-master broadcast asks it to at once.
		m.mu.Unlock()
		return false, false
	}
	w := m.workers[id]
	if w == nil || w.info.Epoch != we || !w.info.Live() {
		m.mu.Unlock()
		return false, w == nil || we <= w.info.Epoch
	}
	w.lastSeen = time.Now()
	if !w.attached {
		w.attached = true
		m.online = append(m.online, id)
		m.wake()
	}
	m.mu.Unlock()
	return true, false
}

// onMessage runs on the NATS goroutine of the messages subscription: a
// worker's business message is queued for the loop, at most masterQueue,
// and the sender told.
func (m *MasterRuntime) onMessage(msg *nats.Msg) {
	if me := wire.Uint(msg, wire.HdrEpoch); me > m.epoch {
		answer(msg, api.Errorf(api.CodeFailedPrecondition, "master %d is stale", m.epoch))
		m.claimedNewer(me)
		return
	}
	id, we := msg.Header.Get(wire.HdrWorker), wire.Uint(msg, wire.HdrWorkerEpoch)
	m.mu.Lock()
	w := m.workers[id]
	switch {
	case m.isEnded():
		m.mu.Unlock()
		answer(msg, api.Errorf(api.CodeFailedPrecondition, "the master has ended"))
	case w == nil || w.info.Epoch != we || !w.info.Live():
		m.mu.Unlock()
		answer(msg, api.Errorf(api.CodeFailedPrecondition, "worker %s incarnation %d is not live", id, we))
	case m.queuedMsgs >= masterQueue:
		m.mu.Unlock()
		answer(msg, api.Errorf(api.CodeUnavailable, "the master has %d messages waiting", masterQueue))
	default:
		m.queuedMsgs++
		m.queue = append(m.queue, msg)
		m.mu.Unlock()
		answer(msg, nil)
		m.wake()
	}
}

// touch marks worker incarnation id/epoch as heard from now.
func (m *MasterRuntime) touch(id string, epoch uint64) {
	m.mu.Lock()
	if w := m.workers[id]; w != nil && w.info.Epoch == epoch && w.info.Live() {
		w.lastSeen = time.Now()
	}
	m.mu.Unlock()
}

func (m *MasterRuntime) enqueue(msg *nats.Msg) {
	m.mu.Lock()
	m.queue = append(m.queue, msg)
	m.mu.Unlock()
	m.wake()
}

// stopWorker tells a worker incarnation it is not (or no longer) wanted.
func (m *MasterRuntime) stopWorker(id string, epoch uint64) {
	inbox, err := m.space.WorkerInbox(m.job.ID, id)
	if err != nil {
		return
	}
	msg := wire.NewMsg(inbox, wire.KindStop, m.epoch, nil)
	wire.SetUint(msg, wire.HdrWorkerEpoch, epoch)
	_ = m.deps.NC.PublishMsg(msg)
}

// drain delivers queued worker events to the job on the loop.
func (m *MasterRuntime) drain(ctx context.Context) error {
	m.mu.Lock()
	queue, online := m.queue, m.online
	m.queue, m.online, m.queuedMsgs = nil, nil, 0
	m.mu.Unlock()
	for _, id := range online {
		if err := m.announce(id); err != nil {
			return err
		}
	}
	for _, msg := range queue {
		if err := m.handle(ctx, msg); err != nil {
			return err
		}
		if m.exiting() {
			return nil
		}
	}
	m.checkReady()
	return nil
}

// announce delivers OnWorkerOnline for a worker incarnation that attached,
// once.
func (m *MasterRuntime) announce(id string) error {
	m.mu.Lock()
	w := m.workers[id]
	if w == nil || w.announced || !w.info.Live() || !w.dispatched {
		m.mu.Unlock()
		return nil
	}
	w.announced, w.recovering = true, false
	w.info.State = string(kvstate.WorkerOnline)
	info := w.info
	m.mu.Unlock()
	m.deps.Metrics.WorkerOnlines.Inc()
	if m.firstOnline {
		m.firstOnline = false
		m.deps.Metrics.FirstWorkerOnlineSeconds.Observe(time.Since(m.started).Seconds())
	}
	m.event(api.EventWorkerOnline, &info, "")
	return m.call("OnWorkerOnline", func() error { return m.impl.OnWorkerOnline(info) })
}

// handle processes one non-heartbeat message on the loop.
func (m *MasterRuntime) handle(ctx context.Context, msg *nats.Msg) error {
	kind := wire.Kind(msg)
	if kind == wire.KindCancel {
		if m.canceled {
			return nil
		}
		m.canceled = true
		m.log.Info("master canceling")
		return m.call("OnCancel", func() error { return m.impl.OnCancel(ctx) })
	}
	id := msg.Header.Get(wire.HdrWorker)
	we := wire.Uint(msg, wire.HdrWorkerEpoch)
	m.mu.Lock()
	w := m.workers[id]
	if w == nil || w.info.Epoch != we || !w.info.Live() {
		m.mu.Unlock()
		return nil // a stale incarnation's message is dropped
	}
	w.lastSeen = time.Now()
	if !w.dispatched {
		w.attached = true
		w.held = append(w.held, msg)
		m.mu.Unlock()
		return nil
	}
	if !w.announced {
		// A message before the first heartbeat (a worker that ends within
		// its first heartbeat, on a busy machine) proves the incarnation
		// runs all the same: it is online before its status or exit, so
		// every offline has its online.
		w.attached = true
		m.mu.Unlock()
		if err := m.announce(id); err != nil {
			return err
		}
		m.mu.Lock()
		if w = m.workers[id]; w == nil || w.info.Epoch != we || !w.info.Live() {
			m.mu.Unlock()
			return nil
		}
	}
	switch kind {
	case wire.KindStatus:
		w.info.Status = append(json.RawMessage(nil), msg.Data...)
		info := w.info
		m.mu.Unlock()
		return m.call("OnWorkerStatusUpdated", func() error { return m.impl.OnWorkerStatusUpdated(info, info.Status) })
	case wire.KindMessage:
		info := w.info
		m.mu.Unlock()
		return m.call("OnWorkerMessage", func() error {
			return m.impl.OnWorkerMessage(info, msg.Header.Get(wire.HdrTopic), msg.Data)
		})
	case wire.KindExit:
		var ex wire.WorkerExit
		_ = json.Unmarshal(msg.Data, &ex)
		if ex.State == "" {
			ex.State = string(kvstate.WorkerFinished)
		}
		w.info.State, w.info.Reason, w.info.Detail, w.info.Error = ex.State, ex.State, ex.Detail, ex.Error
		if ex.Status != nil {
			w.info.Status = ex.Status
		}
		if failedByCode(w.info.State, w.info.Reason) {
			w.info.Failures++
		}
		info := w.info
		m.mu.Unlock()
		return m.offline(info, ex.State)
	case wire.KindLeaving:
		m.mu.Unlock()
		if node := msg.Header.Get(wire.HdrNode); node != "" && m.deps.Placer != nil {
			m.deps.Placer.Forget(node)
		}
		return m.declareLost(ctx, id, we, framework.OfflineNodeLeaving)
	}
	m.mu.Unlock()
	return nil
}

// offline reports an ended worker to the job.
func (m *MasterRuntime) offline(info framework.WorkerInfo, reason string) error {
	m.deps.Metrics.WorkerOfflines.WithLabelValues(offlineLabel(reason)).Inc()
	m.event(api.EventWorkerOffline, &info, reason)
	if m.workerLog.Allow(m.log) {
		m.log.Info("worker offline", zap.String("worker_id", info.ID), zap.Uint64("worker_epoch", info.Epoch),
			zap.String("worker_node", info.Node), zap.String("reason", reason))
	}
	if err := m.call("OnWorkerOffline", func() error { return m.impl.OnWorkerOffline(info, reason) }); err != nil {
		return err
	}
	m.markReported(info)
	return nil
}

// declareLost ends a worker incarnation the master can no longer count on.
// Its record is written as lost under the master's fence, which is what
// fences the incarnation if it is still alive somewhere.
func (m *MasterRuntime) declareLost(ctx context.Context, id string, epoch uint64, reason string) error {
	m.mu.Lock()
	w := m.workers[id]
	if w == nil || w.info.Epoch != epoch || !w.info.Live() {
		m.mu.Unlock()
		return nil
	}
	info := w.info
	m.mu.Unlock()

	state := kvstate.WorkerLost
	if rec, _, err := m.deps.Store.GetWorker(ctx, m.job.ID, id); err == nil && rec.Epoch == epoch && rec.State.Ended() {
		// It ended on its own and the exit message was lost: keep its word.
		state, reason = rec.State, string(rec.State)
		info.Detail, info.Error = rec.Detail, rec.Error
		info.Failures = rec.PriorFailures
		if failedByCode(string(state), reason) {
			info.Failures++
		}
	} else {
		r := recordFromInfo(m.job.ID, &info)
		r.State, r.Reason = kvstate.WorkerLost, reason
		if _, err := m.deps.Store.PutWorkerAsMaster(ctx, m.fence, r); err != nil {
			return m.writeFailed(err)
		}
	}
	m.stopWorker(id, epoch)
	m.mu.Lock()
	if state == kvstate.WorkerLost {
		m.losses[id]++
	}
	w.info.State, w.info.Reason, w.info.Detail, w.info.Error = string(state), reason, info.Detail, info.Error
	w.info.Failures = info.Failures
	info = w.info
	m.mu.Unlock()
	return m.offline(info, reason)
}

// scan declares silent workers lost and updates readiness.
func (m *MasterRuntime) scan(ctx context.Context) error {
	now := time.Now()
	m.placeWaiting(now)
	var silent []*mworker
	// The sweep walks every worker under the lock the heartbeats take: at
	// 10,000 workers every 50 ms it was a fifth of the master's CPU. A
	// twentieth of the worker timeout (500 ms at the default 10 s) is
	// plenty for a timeout, and declaring a worker lost late is safe: it
	// fenced itself before the timeout anyway (docs/failover.md, Timings).
	if now.Sub(m.lastSweep) >= max(scanInterval, m.deps.WorkerTimeout/20) {
		m.lastSweep = now
		silent = m.lateWorkers(now)
	}
	for _, w := range silent {
		m.deps.Metrics.HeartbeatsMissed.Inc()
		if err := m.declareLost(ctx, w.info.ID, w.info.Epoch, framework.OfflineTimeout); err != nil {
			return err
		}
	}
	m.checkReady()
	return nil
}

// scanEvery is the time to the next scan: the short interval while the
// master is not ready or a worker waits for placement, otherwise the
// sweep's own interval (a twentieth of the worker timeout). A node hosting
// thousands of idle masters wakes each twice a second for it, not twenty
// times: the wake-ups were most of such a node's CPU.
func (m *MasterRuntime) scanEvery() time.Duration {
	if !m.ready.Load() {
		return scanInterval
	}
	m.mu.Lock()
	waiting := m.waitq.Len() > 0
	m.mu.Unlock()
	if waiting {
		return scanInterval
	}
	return max(scanInterval, m.deps.WorkerTimeout/20)
}

func (m *MasterRuntime) checkReady() {
	if m.ready.Load() {
		return
	}
	m.mu.Lock()
	for _, w := range m.workers {
		if w.recovering && w.info.Live() {
			m.mu.Unlock()
			return
		}
	}
	m.mu.Unlock()
	m.ready.Store(true)
	took := time.Since(m.started)
	m.deps.Metrics.MasterReadySeconds.Observe(took.Seconds())
	m.log.Info("master ready", zap.Duration("took", took))
	m.event(api.EventMasterReady, nil, "")
}

// fail ends the incarnation after a step returned err: a fenced master
// (a write of its was refused) stops without writing its exit, which
// would be refused too and would tell the workers, now led by a newer
// epoch, that the job ended; any other error fails the master.
func (m *MasterRuntime) fail(err error) error {
	switch {
	case errors.Is(err, framework.ErrFenced):
		return err
	case errors.Is(err, kvstate.ErrStaleEpoch):
		return m.fenced(err)
	}
	return m.exit(framework.ExitFailed, err, nil)
}

// writeFailed turns a failed write into the right end: fenced if stale.
func (m *MasterRuntime) writeFailed(err error) error {
	if m.checkWrite(err) {
		return m.fenced(err)
	}
	return err
}

func (m *MasterRuntime) exiting() bool { return m.takeExit() != nil }

// fenced stops the job (StopImpl) for a newer epoch.
func (m *MasterRuntime) fenced(err error) error {
	err = m.fencedErr(err)
	m.stopImpl()
	return err
}

// stopImpl calls the job's Stop, if the job was built.
func (m *MasterRuntime) stopImpl() {
	if m.impl != nil {
		_ = m.guard("Stop", func() error { m.impl.Stop(context.Background()); return nil })
	}
}

// exit persists the master's end and stops its workers. The leader learns
// of the end from its watch of master records: no message is needed.
func (m *MasterRuntime) exit(reason framework.ExitReason, cause error, detail any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.rec.State = kvstate.MasterState(reason)
	m.rec.Error, m.rec.Retryable = nil, false
	if cause != nil {
		m.rec.Error = api.AsError(cause)
		if m.rec.Error.Code == api.CodeInternal && reason == framework.ExitFailed {
			m.rec.Error = &api.Error{Code: api.CodeFailedPrecondition, Message: cause.Error()}
		}
		m.rec.Retryable = !framework.IsPermanent(cause)
	}
	if detail != nil {
		b, err := marshalAny(detail)
		if err != nil {
			m.log.Error("exit detail not JSON", zap.Error(err))
		} else {
			m.rec.Detail = b
		}
	}
	if err := m.deps.Store.PutMaster(ctx, m.fence, m.rec); err != nil {
		if m.checkWrite(err) {
			return m.fenced(err)
		}
		m.log.Error("persist master exit", zap.Error(err))
		return err
	}
	// Only once the exit is durable under this epoch's fence are the
	// workers stopped: a stale master must not stop the workers its
	// successor leads.
	m.mu.Lock()
	var live, waiting []framework.WorkerInfo
	for _, w := range m.workers {
		switch {
		case w.wait != nil:
			waiting = append(waiting, w.info)
		case w.info.Live():
			live = append(live, w.info)
		}
	}
	m.mu.Unlock()
	m.endWaiting(ctx, waiting)
	for _, w := range live {
		m.stopWorker(w.ID, w.Epoch)
		// The event stream pairs every worker_online with an offline.
		m.deps.Metrics.WorkerOfflines.WithLabelValues(offlineJobEnded).Inc()
		m.event(api.EventWorkerOffline, &w, offlineJobEnded)
	}
	if b, err := m.space.WorkersBroadcast(m.job.ID); err == nil {
		_ = m.deps.NC.PublishMsg(wire.NewMsg(b, wire.KindJobEnded, m.epoch, nil))
	}
	m.workerLog.Flush(m.log)
	m.log.Info("master exited", zap.String("reason", string(reason)), zap.Error(cause))
	if m.impl != nil {
		if err := m.guard("Close", func() error { return m.impl.Close(ctx) }); err != nil {
			m.log.Warn("master close", zap.Error(err))
		}
	}
	m.cleanScratch(reason, m.rec.Retryable)
	return nil
}

// event publishes a master or worker event on the job's event subject. Its
// epoch is the master's; a worker event names the worker, its incarnation
// and its node.
func (m *MasterRuntime) event(kind string, w *framework.WorkerInfo, reason string) {
	subj, err := m.space.JobEvents(m.job.ID)
	if err != nil {
		return
	}
	ev := api.Event{Job: m.job.ID, Kind: kind, Epoch: m.epoch, Node: m.deps.Node, Reason: reason, Time: time.Now().UTC()}
	if w != nil {
		ev.Worker, ev.WorkerEpoch, ev.Node = w.ID, w.Epoch, w.Node
	}
	_ = m.deps.NC.Publish(subj, wire.Marshal(ev))
}

func tickInterval(v any, def time.Duration) time.Duration {
	if t, ok := v.(framework.TickIntervaler); ok {
		if d := t.TickInterval(); d > 0 {
			return d
		}
	}
	return def
}

func marshalAny(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return x, nil
	case []byte:
		if !json.Valid(x) {
			return nil, fmt.Errorf("framework: payload is not JSON")
		}
		return x, nil
	}
	return json.Marshal(v)
}

func infoFromRecord(r *kvstate.WorkerRecord) framework.WorkerInfo {
	info := framework.WorkerInfo{ID: r.ID, Type: r.Type, Node: r.Node, Epoch: r.Epoch, State: string(r.State),
		Reason: r.Reason, Status: r.Status, Config: r.Config, Detail: r.Detail, Error: r.Error, Failures: r.PriorFailures}
	if failedByCode(info.State, info.Reason) {
		info.Failures++
	}
	return info
}

func recordFromInfo(job string, w *framework.WorkerInfo) *kvstate.WorkerRecord {
	rec := &kvstate.WorkerRecord{Job: job, ID: w.ID, Type: w.Type, Config: w.Config, Node: w.Node,
		Epoch: w.Epoch, State: kvstate.WorkerState(w.State), Reason: w.Reason, Status: w.Status, Detail: w.Detail, Error: w.Error,
		PriorFailures: w.Failures}
	if failedByCode(w.State, w.Reason) {
		rec.PriorFailures--
	}
	return rec
}

func offlineReason(w framework.WorkerInfo) string {
	if w.Reason != "" {
		return w.Reason
	}
	return w.State
}
