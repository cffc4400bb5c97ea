package jobmanager

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/gopool"
	"github.com/drover-run/drover/internal/placement"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// reconcileInterval is how often the leader re-examines every live job.
const reconcileInterval = 50 * time.Millisecond

// maxParallelOps bounds the leader's in-flight KV and node operations. A
// failover is three round trips per master (epoch write, the node's answer,
// job write); at 64 in flight, moving a node's 1,000 masters was bound by
// the pipeline (about 1,000 a second on a loaded machine), not by CPU: 256
// took the last master's ready from 1.1-1.2 s to 0.94 s
// (BenchmarkMassFailover); 1,024 was no faster.
const maxParallelOps = 256

// leader is the scheduler run by the replica holding the lease. All its
// state lives on one goroutine; watchers, subscriptions and finished
// operations reach it through posts.
type leader struct {
	s     *Service
	log   *zap.Logger
	posts chan func()
	sem   chan struct{}
	// jobs holds the non-terminal jobs.
	jobs map[string]*ljob
	// active is what the tick visits: the live jobs but the sleeping,
	// set aside in resting until a due time (steady: a running master,
	// heard from; until it could time out or its crash probation ends),
	// and the waiting (no node could take them). Without it, a backlog of
	// waiting jobs or 10,000 live ones cost a visit of each every 50 ms,
	// most of the leader's CPU.
	active  map[string]*ljob
	resting restHeap
	// waiting holds the jobs no node could take, by placement class, in
	// the order they came. They are tried again only when the nodes'
	// presence changed (capGen, the placer's generation at the last
	// sweep; at most every waitSweepMin) or a second passed (a node's
	// avoidance ran out): each class from its head until one fails, so a
	// sweep costs a placement attempt per class, not per job. Retrying each one
	// every 250 ms, as before, kept the leader busy in proportion to the
	// backlog (a sixth of the machine's CPU with tens of thousands
	// waiting).
	waiting   map[string]*waitQueue
	capGen    uint64
	lastSweep time.Time
	ticks     int
	// masters holds the latest master record of every live job, and
	// masterRevs its revision: epochs advance by CAS on it, without a read.
	masters    map[string]*kvstate.MasterRecord
	masterRevs map[string]uint64
	// states counts every job by state, for the jobs gauge.
	states map[string]api.State
	synced bool
	// gone holds the job-master nodes whose connection closed and that
	// have not heartbeated since.
	gone map[string]bool
	// lastTick is when the reconcile tick last ran (see unstall).
	lastTick time.Time
	// probation is the one suspect of a crash loop (a job whose masters'
	// nodes died under it twice or more in a row) allowed to run, and
	// probationSince when it got the slot: suspects run one at a time, so
	// the next node death names its cause.
	probation      string
	probationSince time.Time
	ctx            context.Context
}

type ljob struct {
	job *api.Job
	// rev is the revision of job: the leader's updates CAS on it without
	// reading the record first.
	rev uint64
	// lastSeen is the last heartbeat of the job's current master.
	lastSeen time.Time
	// busy is set while an operation on the job is in flight.
	busy bool
	// retryAt delays the next assignment attempt (no capacity, failure).
	retryAt    time.Time
	cancelSent time.Time
	// leftNode is a node that handed this job over: never reuse it.
	leftNode string
	// rest says why the job is in leader.resting, not in leader.active
	// (restNone: it is not); restGen tells its current entry there from
	// older ones.
	rest    restKind
	restGen uint64
	// assignedAt is when the current master was assigned (or the leader
	// learnt of it): after the crash probation its crash count is reset.
	assignedAt time.Time
	// crashWait: a suspect's failover backoff has been set.
	crashWait bool
	// waitQ is the queue the job waits in (rest is restWaiting).
	waitQ *waitQueue
}

// onNodeGone fails over at once every master of a job-master node whose
// NATS connection closed ($SYS disconnect event): a crash, not a hang, so
// there is no point waiting for the master timeout.
func (l *leader) onNodeGone(node, reason string) {
	if !l.synced {
		return
	}
	l.gone[node] = true
	l.s.nodes.Forget(node)
	n := 0
	now := time.Now()
	for _, lj := range l.jobs {
		if lj.job.Node == node {
			n++
			l.reconcileJob(lj, now)
		}
	}
	l.log.Info("job-master node disconnected", zap.String("node", node), zap.String("reason", reason), zap.Int("masters", n))
}

// set records a newer revision of the job; an older one (an op's result
// that the watch already overtook) is ignored.
func (lj *ljob) set(j *api.Job, rev uint64) {
	if rev >= lj.rev {
		lj.job, lj.rev = j, rev
	}
}

func newLeader(s *Service) *leader {
	return &leader{
		s: s, log: s.log.With(zap.Bool("leader", true)),
		posts:      make(chan func(), 4096),
		sem:        make(chan struct{}, maxParallelOps),
		jobs:       map[string]*ljob{},
		active:     map[string]*ljob{},
		waiting:    map[string]*waitQueue{},
		masters:    map[string]*kvstate.MasterRecord{},
		masterRevs: map[string]uint64{},
		states:     map[string]api.State{},
		gone:       map[string]bool{},
	}
}

func (l *leader) post(f func()) {
	select {
	case l.posts <- f:
	case <-l.ctx.Done():
	}
}

func (l *leader) run(ctx context.Context) {
	l.ctx = ctx
	jw, err := l.s.jobs.WatchJobs(ctx)
	if err != nil {
		l.log.Error("watch jobs", zap.Error(err))
		return
	}
	defer func() { _ = jw.Stop() }()
	mw, err := l.s.masters.WatchMasters(ctx)
	if err != nil {
		l.log.Error("watch masters", zap.Error(err))
		return
	}
	defer func() { _ = mw.Stop() }()
	go follow(l, jw, l.onJob, func(e kvstate.JobEvent) bool { return e.Op == kvstate.OpSynced })
	go follow(l, mw, l.onMaster, nil)

	space := l.s.space
	hb, err := l.s.deps.NC.Subscribe(space.ManagerHeartbeat(), func(msg *nats.Msg) {
		var h wire.NodeHeartbeat
		if json.Unmarshal(msg.Data, &h) == nil {
			l.post(func() { l.onNodeHeartbeat(&h) })
		}
	})
	if err != nil {
		l.log.Error("subscribe heartbeats", zap.Error(err))
		return
	}
	defer func() { _ = hb.Unsubscribe() }()
	ctl, err := l.s.deps.NC.Subscribe(space.ManagerControl(), l.onControl)
	if err != nil {
		l.log.Error("subscribe control", zap.Error(err))
		return
	}
	defer func() { _ = ctl.Unsubscribe() }()
	go l.s.sweep(ctx)
	defer l.s.followDisconnects(func(node, reason string) { l.post(func() { l.onNodeGone(node, reason) }) })()

	tick := time.NewTicker(reconcileInterval)
	defer tick.Stop()
	gauge := time.NewTicker(time.Second)
	defer gauge.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-l.posts:
			f()
		case <-tick.C:
			// The receive time, not the tick's: after a stall the pending
			// tick carries the time it was due.
			now := time.Now()
			l.unstall(now)
			l.reconcile(now)
		case <-gauge.C:
			l.updateGauge()
		}
	}
}

// unstall discounts the time the leader itself did not run (a long GC or
// scheduling pause, a SIGSTOP) from every master's silence: heartbeats sent
// meanwhile are still queued, and a master must not be failed over because
// the leader was not listening.
func (l *leader) unstall(tick time.Time) {
	last := l.lastTick
	l.lastTick = tick
	gap := tick.Sub(last) - reconcileInterval
	if last.IsZero() || gap < l.s.cfg.Heartbeat/2 {
		return
	}
	for _, lj := range l.jobs {
		if !lj.lastSeen.IsZero() {
			lj.lastSeen = lj.lastSeen.Add(gap)
		}
	}
}

// follow feeds a watch into the loop; with synced, the event it names
// (the end of the replay) marks the leader synced.
func follow[E any](l *leader, w *kvstate.Watch[E], f func(E), synced func(E) bool) {
	for e := range w.Events() {
		if synced != nil && synced(e) {
			l.post(func() { l.synced = true; l.log.Info("leader synced", zap.Int("live_jobs", len(l.jobs))) })
			continue
		}
		l.post(func() { f(e) })
	}
}

func (l *leader) onJob(e kvstate.JobEvent) {
	id := e.ID
	switch e.Op {
	case kvstate.OpSynced:
		return
	case kvstate.OpDelete:
		l.drop(id)
		delete(l.states, id)
		return
	}
	if lj := l.jobs[id]; lj != nil && lj.rev >= e.Revision {
		// The leader's own write, applied when its op completed: no need
		// to decode it again.
		l.states[id] = lj.job.State
		if lj.job.State.Terminal() {
			l.drop(id)
		}
		return
	}
	j := e.Job
	if e.Err != nil {
		l.jlog(id, 0, "").Warn("unreadable job record", zap.Error(e.Err))
		return
	}
	l.states[id] = j.State
	if j.State.Terminal() {
		l.drop(id)
		return
	}
	lj := l.jobs[id]
	if lj == nil {
		lj = &ljob{job: j, rev: e.Revision, lastSeen: time.Now(), assignedAt: time.Now()}
		l.jobs[id], l.active[id] = lj, lj
	} else {
		if lj.job.Epoch != j.Epoch {
			lj.lastSeen = time.Now()
		}
		lj.set(j, e.Revision)
	}
	// Act on the change now rather than at the next tick: a new job is
	// assigned within a KV round trip of its submission.
	l.reconcileJob(lj, time.Now())
}

// drop forgets what the leader kept of a job that is over; its state
// stays counted for the jobs gauge.
func (l *leader) drop(id string) {
	if l.probation == id {
		l.probation = ""
	}
	if lj := l.jobs[id]; lj != nil {
		l.unwait(lj)
	}
	delete(l.jobs, id)
	delete(l.masters, id)
	delete(l.masterRevs, id)
}

func (l *leader) onMaster(e kvstate.MasterEvent) {
	if e.Op != kvstate.OpPut || e.Err != nil {
		return
	}
	m := e.Master
	if l.states[m.Job].Terminal() {
		return // an ended job's master needs no tracking
	}
	l.masters[m.Job], l.masterRevs[m.Job] = m, e.Revision
	if lj := l.jobs[m.Job]; lj != nil {
		// A master's exit is finalized as soon as it is written.
		l.reconcileJob(lj, time.Now())
	}
}

func (l *leader) onNodeHeartbeat(h *wire.NodeHeartbeat) {
	if !l.synced {
		return
	}
	// The node is connected again (or restarted under the same id).
	delete(l.gone, h.Node)
	now := time.Now()
	for _, ref := range h.Masters {
		lj := l.jobs[ref.Job]
		switch {
		case lj == nil:
			// The job ended or is unknown: nothing may run it.
			l.stopMaster(h.Node, ref.Job, ref.Epoch)
		case ref.Epoch < lj.job.Epoch:
			// A zombie of an older epoch: fenced already, make it stop.
			l.stopMaster(h.Node, ref.Job, ref.Epoch)
		case l.holds(ref.Job, ref.Epoch, h.Node):
			lj.lastSeen = now
		default:
			// A master the records do not place on this node at this
			// epoch: a forged or confused heartbeat keeps nothing alive.
			l.s.metrics.ignoredHeartbeats.Inc()
		}
	}
}

// holds reports whether the master record of job names node at epoch.
func (l *leader) holds(job string, epoch uint64, node string) bool {
	m := l.masters[job]
	return m != nil && m.Epoch == epoch && m.Node == node
}

func (l *leader) onControl(msg *nats.Msg) {
	switch wire.Kind(msg) {
	case wire.KindHandover:
		var h wire.Handover
		if json.Unmarshal(msg.Data, &h) != nil {
			return
		}
		l.post(func() {
			l.s.nodes.Forget(h.Node)
			for _, ref := range h.Masters {
				if lj := l.jobs[ref.Job]; lj != nil && lj.job.Epoch == ref.Epoch {
					l.wake(lj)
					lj.lastSeen, lj.leftNode = time.Time{}, h.Node
					l.s.metrics.failovers.WithLabelValues("handover").Inc()
				}
			}
			l.reconcile(time.Now())
		})
		_ = msg.Respond([]byte(`{"ok":true}`))
	}
}

// reconcile moves every live job one step towards where it should be.
func (l *leader) reconcile(now time.Time) {
	if !l.synced {
		return
	}
	l.ticks++
	if l.ticks%int(time.Second/reconcileInterval) == 0 {
		l.reindex()
	}
	for len(l.resting) > 0 && !now.Before(l.resting[0].due) {
		e := heap.Pop(&l.resting).(restEntry)
		if e.lj.restGen == e.gen && l.jobs[e.lj.job.ID] == e.lj { // not woken or ended since
			l.wake(e.lj)
		}
	}
	if since := now.Sub(l.lastSweep); since >= waitSweepMin {
		if gen := l.s.nodes.Gen(); gen != l.capGen || since >= waitSweepMax {
			l.capGen, l.lastSweep = gen, now
			l.sweepWaiting(now)
		}
	}
	for id, lj := range l.active {
		if l.jobs[id] != lj {
			delete(l.active, id)
			continue
		}
		l.reconcileJob(lj, now)
	}
}

// A sweep of the waiting jobs comes at most every waitSweepMin (with many
// job-master nodes their presence changes every tick, and a sweep costs a
// placement attempt per class: jobs each with selectors of their own make
// as many classes) and at least every waitSweepMax.
const (
	waitSweepMin = 250 * time.Millisecond
	waitSweepMax = time.Second
)

// waitQueue is one placement class's waiting jobs, oldest first from head.
// Entries of jobs woken or ended since are left in place (a sweep skips
// them); live counts the others, so that a queue whose jobs end while it
// waits (canceled, deleted) is compacted instead of growing.
type waitQueue struct {
	entries []restEntry
	head    int
	live    int
}

// waitClass is what decides whether a node can take a job: its type, its
// selectors and the node it must not go back to. Jobs of one class fail
// or succeed to be placed alike, so a sweep stops a class at its first
// failure.
func waitClass(lj *ljob) string {
	key := lj.job.Type + "\x00" + lj.leftNode
	for _, k := range slices.Sorted(maps.Keys(lj.job.Selectors)) {
		key += "\x00" + k + "=" + lj.job.Selectors[k]
	}
	return key
}

// wait takes a job that no node can take out of the tick's visits, to its
// class's queue, until a sweep finds a node for it.
func (l *leader) wait(lj *ljob) {
	if lj.rest == restWaiting {
		return
	}
	lj.rest = restWaiting
	lj.restGen++
	delete(l.active, lj.job.ID)
	class := waitClass(lj)
	q := l.waiting[class]
	if q == nil {
		q = &waitQueue{}
		l.waiting[class] = q
	}
	q.entries = append(q.entries, restEntry{lj: lj, gen: lj.restGen})
	q.live++
	lj.waitQ = q
	if len(q.entries)-q.head > 2*q.live+64 {
		l.compact(q)
	}
}

// compact keeps only the entries of jobs still waiting in q, in order.
func (l *leader) compact(q *waitQueue) {
	kept := q.entries[:0:0]
	for _, e := range q.entries[q.head:] {
		if l.waits(e) {
			kept = append(kept, e)
		}
	}
	q.entries, q.head = kept, 0
}

// waits reports whether e is the entry of a job still waiting in it.
func (l *leader) waits(e restEntry) bool {
	return e.lj.restGen == e.gen && e.lj.rest == restWaiting && l.jobs[e.lj.job.ID] == e.lj
}

// unwait takes a waiting job out of its queue's live count (its entry
// turns stale), as it is woken or ends.
func (l *leader) unwait(lj *ljob) {
	if lj.rest == restWaiting && lj.waitQ != nil {
		lj.waitQ.live--
		lj.waitQ = nil
	}
}

// sweepWaiting offers each class's waiting jobs, oldest first, to the
// nodes until one of them finds none: it goes back to the head of its
// queue, and the rest of the class waits for the next sweep.
func (l *leader) sweepWaiting(now time.Time) {
	for class, q := range l.waiting {
		for q.head < len(q.entries) {
			e := q.entries[q.head]
			q.entries[q.head] = restEntry{}
			q.head++
			lj := e.lj
			if !l.waits(e) {
				continue // woken or ended since
			}
			l.wake(lj)
			l.reconcileJob(lj, now)
			if lj.rest == restWaiting && lj.waitQ == q {
				// Still no node: its new entry, at the tail, goes back
				// to the head.
				last := len(q.entries) - 1
				e := q.entries[last]
				q.entries[last] = restEntry{}
				q.entries = q.entries[:last]
				if q.head > 0 {
					q.head--
					q.entries[q.head] = e
				} else { // the queue was compacted meanwhile
					q.entries = append([]restEntry{e}, q.entries...)
				}
				break
			}
		}
		switch {
		case q.head == len(q.entries):
			delete(l.waiting, class)
		case q.head > len(q.entries)/2:
			l.compact(q)
		}
	}
}

// sleep takes a steady running job out of the tick's visits until its
// master could time out (its last heartbeat plus the master timeout) or
// its crash probation ends, whichever comes first. Heartbeats move
// lastSeen on without waking it: at its due time the tick finds it steady
// again and puts it back to sleep. A due time within a tick is not worth
// the heap.
func (l *leader) sleep(lj *ljob, now time.Time) {
	due := lj.lastSeen.Add(l.s.cfg.MasterTimeout + time.Millisecond)
	if lj.job.Crashes > 0 {
		if p := lj.assignedAt.Add(l.s.cfg.crashProbation()); p.Before(due) {
			due = p
		}
	}
	if lj.rest == restWaiting || due.Before(now.Add(2*reconcileInterval)) {
		return
	}
	l.setAside(lj, restSleeping, due)
}

// setAside moves lj out of active into resting until due, for why.
func (l *leader) setAside(lj *ljob, why restKind, due time.Time) {
	lj.rest = why
	lj.restGen++
	delete(l.active, lj.job.ID)
	heap.Push(&l.resting, restEntry{lj: lj, gen: lj.restGen, due: due})
}

// wake puts a resting job back among those the tick visits.
func (l *leader) wake(lj *ljob) {
	if lj.rest == restNone {
		return
	}
	l.unwait(lj)
	lj.rest = restNone
	lj.restGen++ // its entry in resting is stale now
	if l.jobs[lj.job.ID] == lj {
		l.active[lj.job.ID] = lj
	}
}

// restKind says why a job is out of the tick's visits.
type restKind uint8

const (
	restNone restKind = iota
	restWaiting
	restSleeping
)

// restEntry is a resting job's entry in leader.resting.
type restEntry struct {
	lj  *ljob
	gen uint64
	due time.Time
}

// restHeap orders resting jobs by due time (container/heap).
type restHeap []restEntry

func (h restHeap) Len() int           { return len(h) }
func (h restHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h restHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *restHeap) Push(x any)        { *h = append(*h, x.(restEntry)) }
func (h *restHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = restEntry{}
	*h = old[:len(old)-1]
	return e
}

// reindex puts back in active any live job that is neither there nor
// resting, once a second: the index cannot drift from jobs for longer,
// whatever path added a job.
func (l *leader) reindex() {
	for id, lj := range l.jobs {
		if lj.rest == restNone && l.active[id] == nil {
			l.active[id] = lj
		}
	}
}

// reconcileJob moves one live job one step towards where it should be. The
// tick runs it for every job (timeouts, retries); changes to a job's
// records run it for that job at once.
func (l *leader) reconcileJob(lj *ljob, now time.Time) {
	if lj.rest != restNone {
		l.wake(lj) // something changed: the tick visits it again
	}
	if !l.synced || lj.busy || now.Before(lj.retryAt) || !l.s.mayLead() {
		return
	}
	timeout := l.s.cfg.MasterTimeout
	j := lj.job
	m := l.masters[j.ID]
	current := m != nil && m.Epoch == j.Epoch && j.Epoch > 0
	switch j.State {
	case api.StateCreated:
		l.assign(lj, "first")
	case api.StatePending:
		if (j.NextAttemptAt == nil || !now.Before(*j.NextAttemptAt)) && l.mayStart(lj, j.Crashes, now) {
			l.assign(lj, "restart")
		}
	case api.StateRunning:
		switch {
		case current && m.State.Exited():
			l.finalize(lj, m)
		case l.gone[j.Node] || now.Sub(lj.lastSeen) > timeout:
			reason := "timeout"
			switch {
			case lj.lastSeen.IsZero():
				reason = "handover"
			case l.gone[j.Node]:
				reason = "disconnect"
			}
			crashes := j.Crashes
			if nodeDied(reason) {
				crashes++
				if crashes >= l.s.cfg.crashLoopLimit() {
					l.quarantine(lj, crashes)
					return
				}
			}
			if !l.mayStart(lj, crashes, now) {
				return
			}
			if reason != "handover" {
				l.s.metrics.failovers.WithLabelValues(reason).Inc()
			}
			l.log.Info("master lost, failing over", zap.String("job_id", j.ID), zap.Uint64("epoch", j.Epoch),
				zap.String("node", j.Node), zap.String("reason", reason), zap.Int("crashes", crashes))
			l.assign(lj, reason)
		case current && m.State == kvstate.MasterRunning && (!bytes.Equal(m.Detail, j.Detail) || j.Error != nil):
			l.mirror(lj, m)
		case current && m.State == kvstate.MasterRunning && j.Crashes > 0 && now.Sub(lj.assignedAt) >= l.s.cfg.crashProbation():
			l.acquit(lj)
		case current && m.State == kvstate.MasterRunning:
			l.sleep(lj, now)
		}
	case api.StateCanceling:
		switch {
		case current && m.State.Exited():
			l.finalize(lj, m)
		case l.gone[j.Node] || now.Sub(lj.lastSeen) > timeout ||
			(j.CancelRequestedAt != nil && now.Sub(*j.CancelRequestedAt) > l.s.cfg.CancelTimeout):
			l.forceCancel(lj)
		case now.Sub(lj.cancelSent) > l.s.cfg.Heartbeat:
			lj.cancelSent = now
			l.s.sendCancel(j)
		}
	}
}

// do runs op off the loop with the job marked busy; op's result runs on the loop.
func (l *leader) do(lj *ljob, op func(ctx context.Context) func()) {
	lj.busy = true
	gopool.Go(func() {
		select {
		case l.sem <- struct{}{}:
		case <-l.ctx.Done():
			return
		}
		var after func()
		ctx, cancel := context.WithTimeout(l.ctx, 15*time.Second)
		if l.s.mayLead() {
			after = op(ctx)
		}
		cancel()
		<-l.sem
		l.post(func() {
			lj.busy = false
			if after != nil {
				after()
				// A change that arrived while the job was busy was not
				// acted on (e.g. its master exited during the assignment).
				if l.jobs[lj.job.ID] == lj {
					l.reconcileJob(lj, time.Now())
				}
			}
		})
	})
}

// jlog is the leader's logger for a line about a job's master incarnation.
func (l *leader) jlog(job string, epoch uint64, node string) *zap.Logger {
	return l.log.With(zap.String("job_id", job), zap.Uint64("epoch", epoch), zap.String("node", node))
}

// errAbort stops an update because the job no longer wants it.
var errAbort = errors.New("jobmanager: job moved on")

// assign gives the job's master a new epoch on the best node and asks the
// node to run it. A node that does not answer is avoided for a while and
// the next reconcile tries another node, with another epoch.
func (l *leader) assign(lj *ljob, reason string) {
	j, rev := lj.job, lj.rev
	exclude := lj.leftNode
	if reason == "timeout" || reason == "disconnect" {
		exclude = j.Node
	}
	crashed := nodeDied(reason)
	node, err := l.s.nodes.Pick(j.Type, j.Selectors, exclude)
	if err != nil {
		l.wait(lj)
		if j.State != api.StatePending {
			l.do(lj, func(ctx context.Context) func() {
				_, _, err := l.s.updateJobFrom(ctx, j, rev, func(j *api.Job) error {
					if j.State.Terminal() || j.State == api.StateCanceling {
						return kvstate.ErrNoChange
					}
					j.State = api.StatePending
					if crashed {
						j.Crashes++
					}
					return nil
				})
				if err != nil {
					l.jlog(j.ID, j.Epoch, j.Node).Warn("mark pending", zap.Error(err))
				}
				return nil
			})
			l.jlog(j.ID, j.Epoch, j.Node).Info("no job-master node can take the job; pending")
		}
		return
	}
	mcur, mrev := l.masters[j.ID], l.masterRevs[j.ID]
	l.do(lj, func(ctx context.Context) func() {
		if asSubmitted(j) {
			// Before the master can start and publish events of its own.
			l.s.ensureCreatedEvent(ctx, j, false)
		}
		t0 := time.Now()
		rec, fence, err := l.s.masters.AdvanceEpochFrom(ctx, j.ID, mcur, mrev, func(r *kvstate.MasterRecord) {
			r.Node, r.State, r.Detail = node, kvstate.MasterAssigned, nil
		})
		if err != nil {
			l.jlog(j.ID, j.Epoch, node).Warn("advance epoch", zap.Error(err))
			return func() { lj.retryAt = time.Now().Add(250 * time.Millisecond) }
		}
		t1 := time.Now()
		if err := l.s.assigns.assign(ctx, node, wire.Assign{Job: j.ID, Epoch: rec.Epoch, Rev: fence.Rev()}); err != nil {
			l.log.Warn("assignment refused or unanswered; trying another node", zap.String("job_id", j.ID),
				zap.String("node", node), zap.Uint64("epoch", rec.Epoch), zap.Error(err))
			l.s.nodes.Avoid(node, placement.AvoidAfterFailure)
			return nil
		}
		l.s.metrics.assignments.WithLabelValues(reason).Inc()
		why := "" // a state change explains itself; a move says why
		if reason == "timeout" || reason == "handover" || reason == "disconnect" {
			why = reason
		}
		t2 := time.Now()
		// The created event was made sure of above (one read of the events
		// stream per job, not two).
		updated, nrev, err := l.s.updateJobWhy(ctx, j, rev, why, asSubmitted(j), func(j *api.Job) error {
			if j.State.Terminal() {
				return errAbort
			}
			if j.State != api.StateCanceling {
				j.State = api.StateRunning
			}
			j.Epoch, j.Node, j.NextAttemptAt = rec.Epoch, node, nil
			if crashed {
				j.Crashes++
			}
			return nil
		})
		if errors.Is(err, errAbort) {
			// Canceled while we assigned: take the master back.
			l.stopMaster(node, j.ID, rec.Epoch)
			return nil
		}
		if err != nil {
			l.jlog(j.ID, rec.Epoch, node).Warn("record assignment", zap.Error(err))
			return nil
		}
		if rec.Epoch == 1 {
			l.s.metrics.scheduleSecs.Observe(time.Since(j.CreatedAt).Seconds())
		}
		l.log.Info("master assigned", zap.String("job_id", j.ID), zap.Uint64("epoch", rec.Epoch),
			zap.String("node", node), zap.String("reason", reason),
			// Where an assignment's time went (docs/failover.md, A whole node's masters).
			zap.Duration("epoch_write", t1.Sub(t0)), zap.Duration("node_answer", t2.Sub(t1)), zap.Duration("job_write", time.Since(t2)))
		return func() {
			lj.set(updated, nrev)
			lj.lastSeen, lj.leftNode, lj.assignedAt, lj.crashWait = time.Now(), "", time.Now(), false
			// The new master's heartbeats are checked against its record
			// (holds): know it now, not when the watch delivers it.
			if l.masterRevs[j.ID] < fence.Rev() {
				l.masters[j.ID], l.masterRevs[j.ID] = rec, fence.Rev()
			}
		}
	})
}

// stopMaster asks a node to stop a master incarnation (best effort).
func (l *leader) stopMaster(node, job string, epoch uint64) {
	subj, err := l.s.space.NodeControl(topics.KindJobMaster, node)
	if err != nil {
		return
	}
	_ = l.s.deps.NC.PublishMsg(wire.NewMsg(subj, wire.KindStopMaster, epoch,
		wire.Marshal(wire.StopMaster{Job: job, Epoch: epoch})))
}

// finalize turns a master's exit into the job's next state.
func (l *leader) finalize(lj *ljob, m *kvstate.MasterRecord) {
	cur, rev := lj.job, lj.rev
	l.do(lj, func(ctx context.Context) func() {
		updated, nrev, err := l.s.updateJobFrom(ctx, cur, rev, func(j *api.Job) error {
			if j.State.Terminal() || j.Epoch != m.Epoch {
				return kvstate.ErrNoChange
			}
			j.Detail = m.Detail
			switch {
			case m.State == kvstate.MasterFinished:
				j.State, j.Error = api.StateFinished, nil
			case m.State == kvstate.MasterCanceled || j.State == api.StateCanceling:
				j.State = api.StateCanceled
			case m.State == kvstate.MasterFailed:
				j.Error = m.Error
				if j.Error == nil {
					j.Error = api.Errorf(api.CodeInternal, "master failed")
				}
				max, backoff := l.policy(j)
				if m.Retryable && j.Restarts < max {
					next := time.Now().Add(backoff).UTC()
					j.State, j.NextAttemptAt = api.StatePending, &next
					j.Restarts++
				} else {
					j.State = api.StateFailed
				}
			default:
				return kvstate.ErrNoChange
			}
			return nil
		})
		if err != nil {
			l.jlog(m.Job, m.Epoch, m.Node).Warn("finalize job", zap.Error(err))
			return nil
		}
		if cur.State != api.StatePending && updated.State == api.StatePending {
			l.s.metrics.restarts.Inc() // the restart policy gave it another attempt
		}
		l.jlog(m.Job, m.Epoch, m.Node).Info("master exited", zap.String("master_state", string(m.State)),
			zap.String("job_state", string(updated.State)), zap.Int("restarts", updated.Restarts))
		return func() { lj.set(updated, nrev) }
	})
}

// policy returns the job's restart bound and the backoff before its next attempt.
func (l *leader) policy(j *api.Job) (int, time.Duration) {
	max, initial, ceiling := l.s.cfg.MaxRestarts, l.s.cfg.RestartBackoff, l.s.cfg.RestartMaxBackoff
	if r := j.Restart; r != nil {
		if r.MaxRestarts != nil {
			max = *r.MaxRestarts
		}
		if r.InitialBackoff > 0 {
			initial = time.Duration(r.InitialBackoff) * time.Millisecond
		}
		if r.MaxBackoff > 0 {
			ceiling = time.Duration(r.MaxBackoff) * time.Millisecond
		}
	}
	backoff := initial
	for i := 0; i < j.Restarts && backoff < ceiling; i++ {
		backoff *= 2
	}
	return max, min(backoff, ceiling)
}

// mirror copies the running master's detail into the job record and
// clears the error of an earlier failed attempt once this one runs.
func (l *leader) mirror(lj *ljob, m *kvstate.MasterRecord) {
	cur, rev := lj.job, lj.rev
	l.do(lj, func(ctx context.Context) func() {
		updated, nrev, err := l.s.updateJobFrom(ctx, cur, rev, func(j *api.Job) error {
			if j.State.Terminal() || j.Epoch != m.Epoch {
				return kvstate.ErrNoChange
			}
			j.Detail, j.Error = m.Detail, nil
			return nil
		})
		if err != nil {
			return nil
		}
		return func() { lj.set(updated, nrev) }
	})
}

// forceCancel ends a cancel that the master did not finish in time (or
// that no live master can finish).
func (l *leader) forceCancel(lj *ljob) {
	l.s.metrics.forcedCancels.Inc()
	l.jlog(lj.job.ID, lj.job.Epoch, lj.job.Node).Warn("forcing cancel")
	l.endByForce(lj, "record forced cancel", func(j *api.Job) { j.State = api.StateCanceled })
}

// endByForce ends a job without its master: a new epoch fences the master,
// its node is told to stop it, its workers are told the job ended, and
// end sets the job's final state.
func (l *leader) endByForce(lj *ljob, what string, end func(j *api.Job)) {
	j, rev := lj.job, lj.rev
	mcur, mrev := l.masters[j.ID], l.masterRevs[j.ID]
	l.do(lj, func(ctx context.Context) func() {
		rec, _, err := l.s.masters.AdvanceEpochFrom(ctx, j.ID, mcur, mrev, func(r *kvstate.MasterRecord) {
			r.State = kvstate.MasterStopped
		})
		if err != nil {
			l.jlog(j.ID, j.Epoch, j.Node).Warn("fence master", zap.String("for", what), zap.Error(err))
			return nil
		}
		if j.Node != "" {
			l.stopMaster(j.Node, j.ID, rec.Epoch-1)
		}
		if b, err := l.s.space.WorkersBroadcast(j.ID); err == nil {
			_ = l.s.deps.NC.PublishMsg(wire.NewMsg(b, wire.KindJobEnded, rec.Epoch, nil))
		}
		updated, nrev, err := l.s.updateJobFrom(ctx, j, rev, func(j *api.Job) error {
			if j.State.Terminal() {
				return kvstate.ErrNoChange
			}
			end(j)
			j.Epoch = rec.Epoch
			return nil
		})
		if err != nil {
			l.jlog(j.ID, rec.Epoch, j.Node).Warn(what, zap.Error(err))
			return nil
		}
		return func() { lj.set(updated, nrev) }
	})
}

func (l *leader) updateGauge() {
	counts := map[api.State]int{}
	for _, s := range l.states {
		counts[s]++
	}
	for _, s := range []api.State{api.StateCreated, api.StatePending, api.StateRunning, api.StateCanceling,
		api.StateFinished, api.StateFailed, api.StateCanceled} {
		l.s.metrics.jobs.WithLabelValues(string(s)).Set(float64(counts[s]))
	}
}
