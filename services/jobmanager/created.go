package jobmanager

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/kvstate"
)

// The created events this replica published while it led. Whoever moves
// a job out of created must know its created event is in the events
// stream before the job's next event (createdEvent). Asking the stream
// (the last message on the job's subject) cost a submitted job a fifth
// of its throughput with the leader at work (docs/architecture.md, What a
// job writes); the leader knows what its own connection published:
//
//   - an event the same connection publishes later is stored after it:
//     one connection's messages reach the stream in the order they were
//     sent, unless the connection reconnected in between (what was in
//     flight then may be lost), so the entry keeps the reconnect count;
//   - for an event another process publishes next (the master's, once the
//     job is assigned), the stream's acknowledgement of the created event
//     says it is stored: the event is published with a reply subject of
//     this replica's, and the assignment waits for that answer.
//
// Any other case (no entry: another replica stored the job, or the log
// was full; a reconnect; no answer in time) reads the stream as before.
type createdLog struct {
	mu      sync.Mutex
	entries map[string]*createdEntry // by job ID
	swept   time.Time
	prefix  string // of the acknowledgements' subjects; "" before start
	max     int    // entries at most (maxCreatedLog)
	log     *zap.Logger
}

// createdEntry is one created event this replica publishes.
type createdEntry struct {
	at         int64  // the job's CreatedAt (UnixNano): one incarnation of its ID
	reconnects uint64 // the connection's reconnects before the job was stored
	// sent is closed when the publish returned (later ones on the
	// connection go after it) or failed (ok false), or the job was not
	// stored; answered when the stream answered (stored says how).
	sent, answered chan struct{}
	ok, stored     bool // set before their channel is closed
}

// errNoCreatedEvent: the job's created event could not be built.
var errNoCreatedEvent = errors.New("jobmanager: no created event")

// maxCreatedLog bounds the log: a replica that leads and stores jobs
// faster than it moves them out of created (none can be placed, or they
// are canceled by other replicas) stops adding at this many, and its
// leader reads the stream for the rest.
const maxCreatedLog = 65_536

// createdAckWait bounds how long an assignment waits for the stream's
// answer to a created event before it reads the stream instead.
const createdAckWait = time.Second

func newCreatedLog(log *zap.Logger) *createdLog {
	return &createdLog{entries: map[string]*createdEntry{}, max: maxCreatedLog, log: log}
}

// start subscribes to the stream's answers on a subject of nc's inbox
// prefix; stop unsubscribes.
func (c *createdLog) start(nc *nats.Conn) (stop func(), err error) {
	prefix := nc.NewInbox()
	sub, err := nc.Subscribe(prefix+".>", func(m *nats.Msg) { c.answer(prefix, m) })
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.prefix = prefix // track hands out reply subjects from now on
	c.mu.Unlock()
	return func() { _ = sub.Unsubscribe() }, nil
}

// track records, before job id (created at) is stored, that this replica
// will publish its created event, the connection having reconnected
// reconnects times; it returns the reply subject for the stream's answer,
// "" when the log does not take it. published must follow.
func (c *createdLog) track(id string, at time.Time, reconnects uint64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prefix == "" {
		return ""
	}
	if len(c.entries) >= c.max {
		c.sweep(time.Now())
		if len(c.entries) >= c.max {
			return ""
		}
	}
	c.entries[id] = &createdEntry{at: at.UnixNano(), reconnects: reconnects,
		sent: make(chan struct{}), answered: make(chan struct{})}
	return c.prefix + "." + id + "." + strconv.FormatInt(at.UnixNano(), 10)
}

// sweep drops, at most once a second, entries older than the events
// stream's duplicate window: their job's created event is long stored
// (ensureCreatedEvent does nothing for them). c.mu is held.
func (c *createdLog) sweep(now time.Time) {
	if now.Sub(c.swept) < time.Second {
		return
	}
	c.swept = now
	oldest := now.Add(-kvstate.EventsDuplicateWindow).UnixNano()
	for id, e := range c.entries {
		if e.at < oldest {
			delete(c.entries, id)
		}
	}
}

// published tells the log whether the created event of job id (created
// at) was sent on the connection (err nil), or not: the job was not
// stored, or the publish failed, and the entry goes. The leader can take
// up the job between its store and its event's publish: it waits for
// this.
func (c *createdLog) published(id string, at time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[id]
	if e == nil || e.at != at.UnixNano() {
		return
	}
	e.ok = err == nil
	close(e.sent)
	if !e.ok {
		delete(c.entries, id)
	}
}

// answer takes the stream's answer to a created event, on a subject
// under prefix: stored (or a duplicate of one stored), or an error.
func (c *createdLog) answer(prefix string, m *nats.Msg) {
	rest, ok := strings.CutPrefix(m.Subject, prefix+".")
	dot := strings.LastIndexByte(rest, '.')
	if !ok || dot < 0 {
		return
	}
	at, err := strconv.ParseInt(rest[dot+1:], 10, 64)
	if err != nil {
		return
	}
	var ack struct {
		Seq   uint64          `json:"seq"`
		Error json.RawMessage `json:"error"`
	}
	stored := json.Unmarshal(m.Data, &ack) == nil && ack.Error == nil && ack.Seq > 0
	if !stored {
		c.log.Debug("created event not stored", zap.String("job_id", rest[:dot]), zap.ByteString("answer", m.Data))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[rest[:dot]]
	if e == nil || e.at != at {
		return
	}
	select {
	case <-e.answered:
	default:
		e.stored = stored
		close(e.answered)
	}
}

// precedes takes job id's entry (created at) and tells whether its created
// event is known to come before the job's next event: once it is sent,
// when that event is this connection's own (ownNext) and the connection
// has not reconnected since (reconnects); otherwise once the stream's
// answer says it is stored. It waits at most createdAckWait in all (or
// until ctx ends).
func (c *createdLog) precedes(ctx context.Context, id string, at time.Time, reconnects uint64, ownNext bool) bool {
	c.mu.Lock()
	e := c.entries[id]
	c.mu.Unlock()
	if e == nil || e.at != at.UnixNano() {
		return false
	}
	// The entry goes once used; the answer finds it until then.
	defer func() {
		c.mu.Lock()
		if c.entries[id] == e {
			delete(c.entries, id)
		}
		c.mu.Unlock()
	}()
	t := time.NewTimer(createdAckWait)
	defer t.Stop()
	select {
	case <-e.sent:
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
	if !e.ok {
		return false
	}
	if ownNext && e.reconnects == reconnects {
		return true
	}
	select {
	case <-e.answered:
		return e.stored
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}
