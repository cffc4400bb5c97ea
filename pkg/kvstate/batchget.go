package kvstate

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// maxBatchKeys is the most keys one batched direct get answers for: the
// server's own bound on a multi_last request.
const maxBatchKeys = 1024

// errBatchIncomplete: a batched get's answer did not cover every key (more
// keys than one batch, a reply cut short, a server without batched gets).
var errBatchIncomplete = errors.New("kvstate: batched get incomplete")

// batchGets sends JetStream's batched direct gets (DIRECT.GET with
// multi_last) and collects their replies over one subscription per
// connection, each request told apart by the last token of its reply
// subject. A subscription per request (what a request-many helper does)
// costs a subscribe and unsubscribe on the server and a delivery queue of
// the connection's sync-queue length (512 KiB of pointers by default) in
// this process, per read: when a node's masters all recover at once that
// was a fifth of the node's CPU, mostly the garbage collector.
type batchGets struct {
	nc *nats.Conn

	once   sync.Once
	err    error
	prefix string // reply subjects: prefix + token

	seq     atomic.Uint64
	mu      sync.Mutex
	waiting map[string]chan *nats.Msg
}

func (b *batchGets) start() error {
	b.once.Do(func() {
		b.prefix = b.nc.NewInbox() + "."
		b.waiting = map[string]chan *nats.Msg{}
		var sub *nats.Subscription
		if sub, b.err = b.nc.Subscribe(b.prefix+"*", b.deliver); b.err == nil {
			// The callback only hands messages on; its queue stays short.
			b.err = sub.SetPendingLimits(-1, -1)
		}
	})
	return b.err
}

// deliver hands a reply to its request. A request's channel holds every
// reply one batch can have, so an honest server never fills it; anything
// beyond, or for a request no longer waiting, is dropped.
func (b *batchGets) deliver(m *nats.Msg) {
	token := m.Subject[len(b.prefix):]
	b.mu.Lock()
	ch := b.waiting[token]
	b.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- m:
	default:
	}
}

// lastOfEach returns the last message of every subject of stream matching
// filter (at most maxBatchKeys subjects), delete markers included;
// errBatchIncomplete when the answer does not cover them all.
func (b *batchGets) lastOfEach(ctx context.Context, stream, filter string) ([]*nats.Msg, error) {
	if err := b.start(); err != nil {
		return nil, err
	}
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		Batch     int      `json:"batch"`
	}{[]string{filter}, maxBatchKeys})
	if err != nil {
		return nil, err
	}
	token := strconv.FormatUint(b.seq.Add(1), 36)
	ch := make(chan *nats.Msg, maxBatchKeys+2)
	b.mu.Lock()
	b.waiting[token] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiting, token)
		b.mu.Unlock()
	}()
	if err := b.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, b.prefix+token, req); err != nil {
		return nil, err
	}
	var out []*nats.Msg
	pending := ""
	for {
		select {
		case m := <-ch:
			if len(m.Data) == 0 && m.Header.Get("Status") != "" {
				switch {
				case m.Header.Get("Status") == "404" && len(out) == 0:
					return nil, nil // no subject matches
				case m.Header.Get("Status") == "204" && pending == "0":
					return out, nil // end of a batch that holds every subject
				}
				return nil, errBatchIncomplete
			}
			if pending = m.Header.Get("Nats-Num-Pending"); pending == "" {
				return nil, errBatchIncomplete // a server without batched gets
			}
			if len(out) == maxBatchKeys {
				return nil, errBatchIncomplete
			}
			out = append(out, m)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
