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
	waiting map[string]*batchReplies
}

// batchReplies collects one request's replies until its end.
type batchReplies struct {
	msgs []*nats.Msg
	done chan struct{} // closed at the end (or when more came than one batch has)
}

func (b *batchGets) start() error {
	b.once.Do(func() {
		b.prefix = b.nc.NewInbox() + "."
		b.waiting = map[string]*batchReplies{}
		// nats.go's default pending limits, as every subscription but a
		// master's inbox (docs/operations.md, Limits): the callback only
		// appends, and a flood beyond them is dropped, not queued.
		_, b.err = b.nc.Subscribe(b.prefix+"*", b.deliver)
	})
	return b.err
}

// endOfBatch: a reply without data but with a status ends a batch (204
// end of batch, 404 no message, or an error).
func endOfBatch(m *nats.Msg) bool { return len(m.Data) == 0 && m.Header.Get("Status") != "" }

// deliver hands a reply to its request; one for a request no longer
// waiting, or beyond what one batch can hold, is dropped.
func (b *batchGets) deliver(m *nats.Msg) {
	token := m.Subject[len(b.prefix):]
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.waiting[token]
	if r == nil {
		return
	}
	r.msgs = append(r.msgs, m)
	if endOfBatch(m) || len(r.msgs) > maxBatchKeys {
		delete(b.waiting, token)
		close(r.done)
	}
}

// lastOfEach returns the last message of every subject of stream matching
// the filters (at most maxBatchKeys subjects), delete markers included;
// errBatchIncomplete when the answer does not cover them all.
func (b *batchGets) lastOfEach(ctx context.Context, stream string, filters []string) ([]*nats.Msg, error) {
	if err := b.start(); err != nil {
		return nil, err
	}
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		Batch     int      `json:"batch"`
	}{filters, maxBatchKeys})
	if err != nil {
		return nil, err
	}
	token := strconv.FormatUint(b.seq.Add(1), 36)
	r := &batchReplies{done: make(chan struct{})}
	b.mu.Lock()
	b.waiting[token] = r
	b.mu.Unlock()
	if err := b.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, b.prefix+token, req); err != nil {
		b.forget(token)
		return nil, err
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		b.forget(token)
		return nil, ctx.Err()
	}
	// done is closed under b.mu after the last append: r.msgs is final.
	return batchResult(r.msgs)
}

// batchResult checks a batch's replies, the last one its end: the
// messages, none for 404 (no subject matches), errBatchIncomplete for an
// answer that does not cover every subject or is not a batch's.
func batchResult(replies []*nats.Msg) ([]*nats.Msg, error) {
	if len(replies) == 0 {
		return nil, errBatchIncomplete
	}
	msgs, end := replies[:len(replies)-1], replies[len(replies)-1]
	switch {
	case !endOfBatch(end):
		return nil, errBatchIncomplete // more replies than one batch has
	case end.Header.Get("Status") == "404" && len(msgs) == 0:
		return nil, nil // no subject matches
	case end.Header.Get("Status") != "204" || len(msgs) == 0:
		return nil, errBatchIncomplete
	}
	for _, m := range msgs {
		if endOfBatch(m) || m.Header.Get("Nats-Num-Pending") == "" {
			return nil, errBatchIncomplete // a server without batched gets
		}
	}
	if msgs[len(msgs)-1].Header.Get("Nats-Num-Pending") != "0" {
		return nil, errBatchIncomplete // more subjects than one batch
	}
	return msgs, nil
}

func (b *batchGets) forget(token string) {
	b.mu.Lock()
	delete(b.waiting, token)
	b.mu.Unlock()
}
