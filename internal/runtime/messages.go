package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

// Business messages travel by request on subjects of their own, apart
// from heartbeats and acknowledgements: the receiving runtime answers at
// once whether it queued the message, never blocking its subscription, so
// a job busy in a callback neither loses messages silently nor starves
// its heartbeats.
const (
	// workerQueue bounds the messages a worker accepted and has not handled.
	workerQueue = 256
	// masterQueue bounds the worker messages a master accepted and has not handled.
	masterQueue = 1024
	// defaultSendTimeout bounds a send whose ctx has no deadline.
	defaultSendTimeout = 10 * time.Second
	// sendRetry is the pause between two tries while nobody listens.
	sendRetry = 20 * time.Millisecond
	// maxSendsInFlight bounds a master's business messages awaiting
	// their answer: a worker node delivers every worker's business
	// messages on one lane (lane), which one job's senders must not fill.
	maxSendsInFlight = 1024
)

// inflight bounds the calls in progress at once; a call past the bound
// waits for one to end, or for its ctx.
type inflight struct{ slots chan struct{} }

func newInflight(n int) *inflight { return &inflight{slots: make(chan struct{}, n)} }

func (f *inflight) acquire(ctx context.Context) error {
	select {
	case f.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %d messages already await their answer: %v", framework.ErrNotDelivered, cap(f.slots), ctx.Err())
	}
}

func (f *inflight) release() { <-f.slots }

// withSendTimeout is ctx, bounded by defaultSendTimeout if it has no deadline.
func withSendTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultSendTimeout)
}

// send delivers msg by request. While nobody listens (a worker not yet
// subscribed, a master failing over) it tries again until ctx ends or
// wanted says the receiver is gone.
func send(ctx context.Context, nc *nats.Conn, msg *nats.Msg, wanted func() error) error {
	ctx, cancel := withSendTimeout(ctx)
	defer cancel()
	for {
		resp, err := nc.RequestMsgWithContext(ctx, msg)
		if errors.Is(err, nats.ErrNoResponders) {
			if werr := wanted(); werr != nil {
				return werr
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w: nobody took it before the deadline: %v", framework.ErrNotDelivered, ctx.Err())
			case <-time.After(sendRetry):
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %v", framework.ErrNotDelivered, err)
		}
		var rep wire.ControlReply
		if err := json.Unmarshal(resp.Data, &rep); err != nil {
			return fmt.Errorf("%w: bad reply: %v", framework.ErrNotDelivered, err)
		}
		if !rep.OK {
			if rep.Error == nil {
				rep.Error = api.Errorf(api.CodeInternal, "refused")
			}
			return fmt.Errorf("%w: %w", framework.ErrNotDelivered, rep.Error)
		}
		return nil
	}
}

// answer replies to a message request: nil means queued.
func answer(msg *nats.Msg, err error) {
	if msg.Reply == "" {
		return
	}
	rep := wire.ControlReply{OK: err == nil}
	if err != nil {
		rep.Error = api.AsError(err)
	}
	_ = msg.Respond(wire.Marshal(rep))
}

// msgQueue is a worker's queue of accepted business messages, bounded by
// workerQueue. It grows as messages come: most workers are sent none, and
// a channel of workerQueue cost each of them 2 KB, a tenth of a worker's
// memory.
type msgQueue struct {
	mu    sync.Mutex
	items []*nats.Msg
	// ready holds a token while items is not empty.
	ready chan struct{}
}

func newMsgQueue() *msgQueue { return &msgQueue{ready: make(chan struct{}, 1)} }

// put queues m unless workerQueue messages wait; it never blocks.
func (q *msgQueue) put(m *nats.Msg) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= workerQueue {
		return false
	}
	q.items = append(q.items, m)
	q.signal()
	return true
}

// take returns the oldest message, if one waits; call it on a receive
// from ready.
func (q *msgQueue) take() (*nats.Msg, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil, false
	}
	m := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil // the array goes with the burst
	} else {
		q.signal()
	}
	return m, true
}

func (q *msgQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}
