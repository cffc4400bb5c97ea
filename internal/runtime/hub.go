package runtime

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/topics"
)

// Hub is what a worker node's workers share: their heartbeats, each
// job's broadcast subscription, and the lanes that deliver every worker's
// own messages (lane).
//
// On each boundary of the heartbeat interval it sends, per job, one
// message to the job's master carrying every live worker of that job on
// the node (wire.HeartbeatBatch), and the master answers, in one message
// to this node, the heartbeats it acknowledges. A worker's heartbeat
// costs an entry in a message, not a message, a wake-up and an
// acknowledgement of its own: at 10,000 workers on a node those were most
// of what the workers cost when idle (BENCHMARKS.md). And it subscribes
// to a job's broadcast subject (a new master, the job's end) once, while
// the node runs a worker of the job, handing each message to those
// workers: one subscription and delivery goroutine per job, not per worker.
//
// Each worker still has its own heartbeat and its own fence: an entry
// names the worker incarnation and the master epoch it follows, the
// master checks and acknowledges each entry alone, and a worker whose
// heartbeats go unacknowledged for its SelfFence stops itself.
type Hub struct {
	nc    *nats.Conn
	space topics.Space
	every time.Duration
	// acks prefixes this node's subjects for the masters'
	// acknowledgements: each heartbeat message has a reply subject of its
	// own under it, so a job-master node answers with the permission that
	// message gives it (the server allows one answer per reply subject
	// delivered: a subject shared by the heartbeats of many jobs would have
	// the answers after the first refused).
	acks string
	seq  uint64

	mu   sync.Mutex
	jobs map[string]*hubJob
	// soon: workers whose heartbeat goes out now, not at the next
	// boundary (a new worker, one that follows a new master).
	soon []*WorkerRuntime
	wake chan struct{}

	// ctl delivers the workers' inboxes (the runtime's control messages),
	// msgs their business messages.
	ctl, msgs *lane
}

// hubJob is a job's workers on the node and its broadcast subscription.
type hubJob struct {
	workers map[string]*WorkerRuntime // worker id → incarnation
	bcast   *nats.Subscription
}

// NewHub prepares a node's hub; Start sends the heartbeats.
func NewHub(nc *nats.Conn, space topics.Space, every time.Duration) *Hub {
	return &Hub{nc: nc, space: space, every: every, jobs: map[string]*hubJob{}, wake: make(chan struct{}, 1),
		ctl: newLane(nc), msgs: newLane(nc)}
}

// Start subscribes to the masters' acknowledgements, sends heartbeats
// and delivers the workers' messages until the returned stop is called.
func (h *Hub) Start() (stop func(), err error) {
	h.acks = h.nc.NewInbox() + "."
	sub, err := h.nc.Subscribe(h.acks+"*", h.onAck)
	if err != nil {
		return nil, err
	}
	stopCtl, stopMsgs := h.ctl.start(), h.msgs.start()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		h.run(quit)
	}()
	return func() {
		close(quit)
		<-done
		stopMsgs()
		stopCtl()
		_ = sub.Unsubscribe()
	}, nil
}

func (h *Hub) run(quit chan struct{}) {
	t := newAlignedTicker(h.every)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-h.wake:
			h.mu.Lock()
			soon := h.soon
			h.soon = nil
			h.mu.Unlock()
			h.send(soon)
		case <-t.C():
			t.Next()
			h.send(h.due())
		}
	}
}

// add starts w's heartbeats, the first at once, and hands it its job's
// broadcasts from now on.
func (h *Hub) add(w *WorkerRuntime) error {
	h.mu.Lock()
	j := h.jobs[w.spec.Job]
	if j == nil {
		subj, err := h.space.WorkersBroadcast(w.spec.Job)
		if err != nil {
			h.mu.Unlock()
			return err
		}
		job := w.spec.Job
		sub, err := h.nc.Subscribe(subj, func(msg *nats.Msg) { h.onBroadcast(job, msg) })
		if err != nil {
			h.mu.Unlock()
			return err
		}
		j = &hubJob{workers: map[string]*WorkerRuntime{}, bcast: sub}
		h.jobs[job] = j
	}
	j.workers[w.spec.Worker] = w
	h.mu.Unlock()
	h.now(w)
	return nil
}

// remove ends w's heartbeats and broadcasts; the job's subscription ends
// with its last worker on the node.
func (h *Hub) remove(w *WorkerRuntime) {
	h.mu.Lock()
	defer h.mu.Unlock()
	j := h.jobs[w.spec.Job]
	if j == nil || j.workers[w.spec.Worker] != w {
		return
	}
	delete(j.workers, w.spec.Worker)
	if len(j.workers) == 0 {
		_ = j.bcast.Unsubscribe()
		delete(h.jobs, w.spec.Job)
	}
}

// onBroadcast hands a job's broadcast to each of its workers on the node.
func (h *Hub) onBroadcast(job string, msg *nats.Msg) {
	h.mu.Lock()
	var ws []*WorkerRuntime
	if j := h.jobs[job]; j != nil {
		ws = make([]*WorkerRuntime, 0, len(j.workers))
		for _, w := range j.workers {
			ws = append(ws, w)
		}
	}
	h.mu.Unlock()
	for _, w := range ws {
		w.onMsg(msg)
	}
}

// now sends w's heartbeat without waiting for the next boundary.
func (h *Hub) now(w *WorkerRuntime) {
	h.mu.Lock()
	h.soon = append(h.soon, w)
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// due returns the workers whose heartbeat is due; a worker that had no
// acknowledgement for its SelfFence is told to stop instead.
func (h *Hub) due() []*WorkerRuntime {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	var out []*WorkerRuntime
	for _, j := range h.jobs {
		for _, w := range j.workers {
			if now.Sub(time.Unix(0, w.lastAck.Load())) > w.deps.SelfFence {
				w.selfFence()
				continue
			}
			out = append(out, w)
		}
	}
	return out
}

// send publishes the heartbeats of ws, one message per job (or per
// MaxHeartbeatBatch workers of a job).
func (h *Hub) send(ws []*WorkerRuntime) {
	batches := map[string]*wire.HeartbeatBatch{}
	flush := func(b *wire.HeartbeatBatch) {
		subj, err := h.space.MasterHeartbeats(b.Job)
		if err != nil {
			return
		}
		msg := wire.NewMsg(subj, wire.KindHeartbeat, 0, wire.Marshal(b))
		h.seq++
		msg.Reply = h.acks + strconv.FormatUint(h.seq, 36)
		_ = h.nc.PublishMsg(msg)
		b.Workers = b.Workers[:0]
	}
	for _, w := range ws {
		if w.isEnded() {
			continue
		}
		b := batches[w.spec.Job]
		if b == nil {
			b = &wire.HeartbeatBatch{Job: w.spec.Job}
			batches[w.spec.Job] = b
		}
		b.Workers = append(b.Workers, wire.Heartbeat{Worker: w.spec.Worker, Epoch: w.spec.Epoch, Master: w.masterEpoch.Load()})
		w.deps.Metrics.HeartbeatsSent.Inc()
		if len(b.Workers) == wire.MaxHeartbeatBatch {
			flush(b)
		}
	}
	for _, b := range batches {
		if len(b.Workers) > 0 {
			flush(b)
		}
	}
}

// onAck hands a master's acknowledgements to the incarnations they name.
func (h *Hub) onAck(msg *nats.Msg) {
	if wire.Kind(msg) != wire.KindAck {
		return
	}
	var b wire.HeartbeatBatch
	if json.Unmarshal(msg.Data, &b) != nil || len(b.Workers) > wire.MaxHeartbeatBatch {
		return
	}
	epoch := wire.Uint(msg, wire.HdrEpoch)
	h.mu.Lock()
	var ws map[string]*WorkerRuntime
	if j := h.jobs[b.Job]; j != nil {
		ws = j.workers
	}
	acked := make([]*WorkerRuntime, 0, len(b.Workers))
	for _, a := range b.Workers {
		if w := ws[a.Worker]; w != nil && w.spec.Epoch == a.Epoch {
			acked = append(acked, w)
		}
	}
	h.mu.Unlock()
	for _, w := range acked {
		w.acked(epoch)
	}
}
