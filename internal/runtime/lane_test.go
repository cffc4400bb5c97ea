package runtime

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/topics"
)

// startHub starts a node's hub on its own connection.
func startHub(t *testing.T) (*Hub, *nats.Conn) {
	t.Helper()
	srv := natstest.RunServer(t)
	nc, _ := natstest.Connect(t, srv)
	pub, _ := natstest.Connect(t, srv)
	h := NewHub(nc, topics.MustNew(topics.DefaultPrefix), time.Hour)
	stop, err := h.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return h, pub
}

// flushSubs waits until the server has the hub's subscriptions: another
// connection's messages published before would find no subscriber.
func flushSubs(t *testing.T, h *Hub) {
	t.Helper()
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestALaneHandsEachSubscriptionItsOwnMessages: subscriptions sharing a
// lane each get their subject's messages, in order, and none after they
// end.
func TestALaneHandsEachSubscriptionItsOwnMessages(t *testing.T) {
	h, pub := startHub(t)
	got := make(chan string, 64)
	subs := map[string]*nats.Subscription{}
	for _, name := range []string{"a", "b"} {
		sub, err := h.msgs.subscribe("lane."+name, func(m *nats.Msg) { got <- name + "=" + string(m.Data) })
		if err != nil {
			t.Fatal(err)
		}
		subs[name] = sub
	}
	flushSubs(t, h)
	for i := range 3 {
		for _, name := range []string{"a", "b"} {
			if err := pub.Publish("lane."+name, []byte{'0' + byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var a, b []string
	for range 6 {
		select {
		case s := <-got:
			if strings.HasPrefix(s, "a=") {
				a = append(a, s)
			} else {
				b = append(b, s)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("got %v and %v, want 3 messages each", a, b)
		}
	}
	if strings.Join(a, ",") != "a=0,a=1,a=2" || strings.Join(b, ",") != "b=0,b=1,b=2" {
		t.Fatalf("got %v and %v", a, b)
	}
	h.msgs.unsubscribe(subs["a"])
	_ = pub.Publish("lane.a", []byte("late"))
	_ = pub.Publish("lane.b", []byte("3"))
	select {
	case s := <-got:
		if s != "b=3" {
			t.Fatalf("got %q after a's subscription ended, want b=3", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b's message after a's end never came")
	}
	if _, err := newLane(pub).subscribe("lane.c", func(*nats.Msg) {}); err != errLaneStopped {
		t.Fatalf("subscribe on a lane not started: %v, want errLaneStopped", err)
	}
}

// TestAStopNeverWaitsBehindBusinessMessages: a worker's business messages
// filling their lane to its bound (its handler held, more sent than the
// lane holds, so nats.go drops some) neither hold nor drop a control
// message to another worker of the node.
func TestAStopNeverWaitsBehindBusinessMessages(t *testing.T) {
	h, pub := startHub(t)
	release := make(chan struct{})
	defer close(release)
	flooded, err := h.msgs.subscribe("p2p.job.a.msg.worker.w0", func(*nats.Msg) { <-release })
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	inbox, err := h.ctl.subscribe("p2p.job.b.worker.w0", func(*nats.Msg) { close(stopped) })
	if err != nil {
		t.Fatal(err)
	}
	flushSubs(t, h)
	for range laneDepth + 1000 {
		if err := pub.Publish("p2p.job.a.msg.worker.w0", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*time.Second, "the flooded lane to drop messages", func() bool {
		n, _ := flooded.Dropped()
		return n > 0
	})
	if err := pub.Publish("p2p.job.b.worker.w0", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the stop waited behind the business messages")
	}
	if n, _ := inbox.Dropped(); n != 0 {
		t.Fatalf("the control lane dropped %d messages", n)
	}
}

// TestAWorkersQueueHoldsItsBoundInOrder: a worker's business-message
// queue takes workerQueue messages and refuses the next without
// blocking, hands them out oldest first with a token on ready while any
// waits, and keeps no array once emptied.
func TestAWorkersQueueHoldsItsBoundInOrder(t *testing.T) {
	q := newMsgQueue()
	if _, ok := q.take(); ok {
		t.Fatal("an empty queue gave a message")
	}
	for i := range workerQueue {
		if !q.put(&nats.Msg{Subject: strconv.Itoa(i)}) {
			t.Fatalf("message %d refused under the bound", i)
		}
	}
	if q.put(&nats.Msg{Subject: "over"}) {
		t.Fatalf("message %d accepted over the bound", workerQueue)
	}
	for i := range workerQueue {
		select {
		case <-q.ready:
		default:
			t.Fatalf("no token on ready with %d messages waiting", workerQueue-i)
		}
		m, ok := q.take()
		if !ok || m.Subject != strconv.Itoa(i) {
			t.Fatalf("take %d: %v %v", i, m, ok)
		}
	}
	select {
	case <-q.ready:
		t.Fatal("a token on ready with nothing waiting")
	default:
	}
	if q.items != nil {
		t.Fatalf("an emptied queue keeps an array of %d", cap(q.items))
	}
}

// TestAMastersSendsWaitPastTheirBound: past maxSendsInFlight, a send waits
// for one to end, or fails with ErrNotDelivered when its ctx ends first.
func TestAMastersSendsWaitPastTheirBound(t *testing.T) {
	f := newInflight(maxSendsInFlight)
	ctx := context.Background()
	for i := range maxSendsInFlight {
		if err := f.acquire(ctx); err != nil {
			t.Fatalf("send %d refused under the bound: %v", i, err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := f.acquire(short); !errors.Is(err, framework.ErrNotDelivered) {
		t.Fatalf("a send over the bound: %v, want ErrNotDelivered once its ctx ended", err)
	}
	got := make(chan error, 1)
	go func() { got <- f.acquire(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("a send over the bound went on at once (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	f.release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a send waiting for a slot did not take the one released")
	}
}
