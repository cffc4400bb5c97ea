package jobmanager

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/kvstate"
)

// TestTheCreatedLogKnowsOnlyWhatItSaw drives the log of created events
// against a real stream: which created events a leader may take as
// coming before a job's next event without reading the stream, and which
// it must not.
func TestTheCreatedLogKnowsOnlyWhatItSaw(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}}); err != nil {
		t.Fatal(err)
	}
	c := newCreatedLog(zap.NewNop())
	stop, err := c.start(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	at := time.Now()
	// publish sends job id's created event with the log's reply subject;
	// hdr adds headers (an expectation the stream refuses).
	publish := func(id, reply string, hdr map[string]string) {
		t.Helper()
		m := &nats.Msg{Subject: "ev." + id, Reply: reply, Data: []byte("{}"), Header: nats.Header{}}
		for k, v := range hdr {
			m.Header.Set(k, v)
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		c.published(id, at, nil)
	}

	// The next event this connection's own: sent is enough (nothing is
	// published here, so no answer would ever come).
	if c.track("own", at, 0) == "" {
		t.Fatal("log refused an entry")
	}
	c.published("own", at, nil)
	if !c.precedes(ctx, "own", at, 0, true) {
		t.Error("own next event after a sent created event: not known to follow it")
	}
	// Used once: a second ask reads the stream.
	if c.precedes(ctx, "own", at, 0, true) {
		t.Error("an entry served twice")
	}

	// Another process's event next: the stream's answer says stored.
	publish("other", c.track("other", at, 0), nil)
	if !c.precedes(ctx, "other", at, 0, false) {
		t.Error("stored created event: not known to be stored")
	}
	// The connection reconnected since: what was in flight may be lost,
	// so only the answer counts.
	publish("moved", c.track("moved", at, 0), nil)
	if !c.precedes(ctx, "moved", at, 1, true) {
		t.Error("after a reconnect, a stored created event: not known")
	}
	c.track("lost", at, 0)
	c.published("lost", at, nil) // sent, never reaches the stream
	if c.precedes(ctx, "lost", at, 1, true) {
		t.Error("after a reconnect, an unanswered created event taken as stored")
	}
	// The stream refuses it: its answer is an error.
	publish("refused", c.track("refused", at, 0), map[string]string{jetstream.ExpectedLastSeqHeader: "999"})
	if c.precedes(ctx, "refused", at, 0, false) {
		t.Error("a refused created event taken as stored")
	}
	// Not stored (the job's store or the publish failed): nothing known.
	c.track("failed", at, 0)
	c.published("failed", at, errors.New("no"))
	if c.precedes(ctx, "failed", at, 0, true) {
		t.Error("a failed publish taken as sent")
	}
	// Another incarnation of the ID, or no entry at all.
	c.track("again", at, 0)
	c.published("again", at, nil)
	if c.precedes(ctx, "again", at.Add(time.Nanosecond), 0, true) || c.precedes(ctx, "never", at, 0, true) {
		t.Error("an entry answered for a job it is not of")
	}
	// The leader may take the job up between its store and its event's
	// publish: it waits for the publish.
	c.track("early", at, 0)
	got := make(chan bool)
	go func() { got <- c.precedes(ctx, "early", at, 0, true) }()
	c.published("early", at, nil)
	if !<-got {
		t.Error("a leader early on a job: not told once the created event was sent")
	}
	c.mu.Lock()
	left := len(c.entries)
	c.mu.Unlock()
	if left != 1 { // "again", never used
		t.Errorf("%d entries left, want 1", left)
	}

	// Bounded: full, it takes no more until old entries go.
	c.max = 2 // "again" and x1
	if c.track("x1", at, 0) == "" || c.track("x2", at, 0) != "" {
		t.Fatal("the bound did not hold")
	}
	old := at.Add(-kvstate.EventsDuplicateWindow - time.Second)
	c.mu.Lock()
	for _, e := range c.entries {
		e.at = old.UnixNano()
	}
	c.swept = time.Time{}
	c.mu.Unlock()
	if c.track("x3", at, 0) == "" {
		t.Error("entries past the duplicate window not swept when full")
	}
}
