package kvstate

import (
	"errors"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
)

func reply(data string, hdr ...string) *nats.Msg {
	m := nats.NewMsg("r")
	m.Data = []byte(data)
	for i := 0; i+1 < len(hdr); i += 2 {
		m.Header.Set(hdr[i], hdr[i+1])
	}
	return m
}

func eob() *nats.Msg { return reply("", "Status", "204", "Description", "EOB") }

// TestBatchRepliesAreCheckedAndBounded: a batch's answer counts only when
// it ends as a batch does and covers every subject; anything else, forged
// or cut, is errBatchIncomplete (the caller reads through a consumer).
// Replies for no request waiting, or beyond what one batch holds, are
// dropped: a flood on the reply subject grows nothing.
func TestBatchRepliesAreCheckedAndBounded(t *testing.T) {
	a := reply("a", "Nats-Num-Pending", "1")
	z := reply("z", "Nats-Num-Pending", "0")
	if msgs, err := batchResult([]*nats.Msg{a, z, eob()}); err != nil || len(msgs) != 2 {
		t.Fatalf("a whole batch: %d messages, %v", len(msgs), err)
	}
	if msgs, err := batchResult([]*nats.Msg{reply("", "Status", "404")}); err != nil || msgs != nil {
		t.Fatalf("no subject matches: %v, %v", msgs, err)
	}
	for name, replies := range map[string][]*nats.Msg{
		"nothing":                        nil,
		"more subjects than one batch":   {a, eob()},
		"no end":                         {a, z},
		"a server without batched gets":  {reply("z"), eob()},
		"an error status":                {reply("", "Status", "408")},
		"an end with nothing before":     {eob()},
		"a 404 after messages":           {z, reply("", "Status", "404")},
		"a status in the middle":         {reply("", "Status", "503"), z, eob()},
		"more replies than a batch ends": {a, a, a},
	} {
		if _, err := batchResult(replies); !errors.Is(err, errBatchIncomplete) {
			t.Errorf("%s: %v, want errBatchIncomplete", name, err)
		}
	}

	b := &batchGets{prefix: "p.", waiting: map[string]*batchReplies{}}
	r := &batchReplies{done: make(chan struct{})}
	b.waiting["1"] = r
	for i := range maxBatchKeys + 10 {
		m := reply("x", "Nats-Num-Pending", strconv.Itoa(i))
		m.Subject = "p.1"
		b.deliver(m)
		other := reply("x")
		other.Subject = "p.2" // no request waits for it
		b.deliver(other)
	}
	select {
	case <-r.done:
	default:
		t.Fatal("a flood past one batch did not end the request")
	}
	if len(r.msgs) != maxBatchKeys+1 {
		t.Errorf("%d replies kept, want one batch's %d", len(r.msgs), maxBatchKeys+1)
	}
	if len(b.waiting) != 0 {
		t.Errorf("%d requests still waiting after the flood", len(b.waiting))
	}
	if _, err := batchResult(r.msgs); !errors.Is(err, errBatchIncomplete) {
		t.Errorf("a flooded request: %v, want errBatchIncomplete", err)
	}
}
