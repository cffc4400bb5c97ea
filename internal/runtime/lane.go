package runtime

import (
	"errors"
	"sync"

	"github.com/nats-io/nats.go"
)

// A lane hands the messages of many subscriptions to their handlers on
// one goroutine. nats.go starts a delivery goroutine for every
// asynchronous subscription; a worker node subscribed twice per worker
// (its inbox and its business messages), so each worker cost two
// goroutines and their stacks besides its own — about a fifth of a
// worker's memory, and on a fresh node most of the page faults of
// starting thousands of workers (BENCHMARKS.md, Placement). The node's
// workers instead subscribe through two lanes of the node's Hub, one for
// the runtime's control messages and one for business messages, so a
// stop never waits behind a worker's messages.
//
// Handlers run on the lane's goroutine and must not block: they queue
// the message for their worker or answer it at once, as the worker's
// handlers do. The lane's channel is the bound: nats.go drops a message
// that finds it full and reports the subscription a slow consumer, as it
// drops one over an asynchronous subscription's pending limit. What
// fills a lane is messages in flight to the node's workers, which their
// senders wait on (a business message is a request answered when
// queued): laneDepth of them at once, over every job on the node.
type lane struct {
	nc *nats.Conn
	ch chan *nats.Msg

	mu       sync.RWMutex
	handlers map[*nats.Subscription]func(*nats.Msg)
	running  bool
}

// laneDepth is how many messages a lane holds before nats.go drops one.
const laneDepth = 1 << 15

var errLaneStopped = errors.New("runtime: the node's message lanes are not running")

func newLane(nc *nats.Conn) *lane {
	return &lane{nc: nc, handlers: map[*nats.Subscription]func(*nats.Msg){}}
}

// start hands the lane's messages to their handlers until the returned
// stop is called.
func (l *lane) start() (stop func()) {
	l.mu.Lock()
	l.ch, l.running = make(chan *nats.Msg, laneDepth), true
	ch := l.ch
	l.mu.Unlock()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case m := <-ch:
				l.mu.RLock()
				f := l.handlers[m.Sub]
				l.mu.RUnlock()
				if f != nil {
					f(m)
				}
			}
		}
	}()
	return func() {
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
		close(quit)
		<-done
	}
}

// subscribe hands subj's messages to f until unsubscribe.
func (l *lane) subscribe(subj string, f func(*nats.Msg)) (*nats.Subscription, error) {
	// Held across the subscription: a message that arrives at once waits
	// for its handler to be known.
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		return nil, errLaneStopped
	}
	sub, err := l.nc.ChanSubscribe(subj, l.ch)
	if err != nil {
		return nil, err
	}
	l.handlers[sub] = f
	return sub, nil
}

// unsubscribe ends sub; its messages still in the lane are dropped.
func (l *lane) unsubscribe(sub *nats.Subscription) {
	l.mu.Lock()
	delete(l.handlers, sub)
	l.mu.Unlock()
	_ = sub.Unsubscribe()
}
