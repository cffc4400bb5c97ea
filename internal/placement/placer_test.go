package placement

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

func TestPlacerPicksLeastLoadedMatchingLiveNode(t *testing.T) {
	p := NewPlacer(api.NodeWorker, time.Minute)
	t1 := []string{"t"}
	p.Update(api.Node{ID: "a", Capacity: 10, Load: 5, Labels: map[string]string{"zone": "x"}, Types: t1})
	p.Update(api.Node{ID: "b", Capacity: 10, Load: 1, Types: t1})
	p.Update(api.Node{ID: "c", Capacity: 2, Load: 2, Types: t1})
	p.Update(api.Node{ID: "d", Capacity: 10, Load: 0, Types: []string{"other"}})
	got := map[string]int{}
	for range 8 {
		n, err := p.Pick("t", nil, "")
		if err != nil {
			t.Fatal(err)
		}
		got[n]++
	}
	// b starts at 1/10, a at 5/10: b takes placements until it matches a.
	if got["c"] != 0 || got["d"] != 0 || got["b"] < 4 {
		t.Fatalf("placements %v", got)
	}
	if n, err := p.Pick("t", map[string]string{"zone": "x"}, ""); err != nil || n != "a" {
		t.Fatalf("selector pick = %s, %v", n, err)
	}
	if _, err := p.Pick("t", map[string]string{"zone": "y"}, ""); !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("unmatched selector: %v", err)
	}
	if n, err := p.Pick("t", map[string]string{"zone": "x"}, "a"); err == nil {
		t.Fatalf("excluded node %s picked", n)
	}
	p.Forget("a")
	if _, err := p.Pick("t", map[string]string{"zone": "x"}, ""); !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("forgotten node still picked: %v", err)
	}
	p.Avoid("b", time.Minute)
	if n, _ := p.Pick("t", nil, ""); n == "b" {
		t.Fatal("avoided node picked")
	}
	if !p.Serves("other") || p.Serves("missing") {
		t.Fatal("Serves is wrong")
	}
	// A node silent for longer than the TTL is dead even without an event.
	q := NewPlacer(api.NodeWorker, 10*time.Millisecond)
	q.Update(api.Node{ID: "z", Capacity: 10, Types: t1})
	time.Sleep(20 * time.Millisecond)
	if _, err := q.Pick("t", nil, ""); !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("silent node picked: %v", err)
	}
}

// TestNoneCanTakeOnlyOnceItKnowsEveryNode: a placer says no node can take a
// placement only after its watch delivered every node present when it
// started; then it answers as Pick would, without counting a placement.
func TestNoneCanTakeOnlyOnceItKnowsEveryNode(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := kvstate.Open(ctx, js, topics.MustNew("t"), kvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	full := api.Node{ID: "full", Kind: api.NodeJobMaster, Capacity: 1, Load: 1, Types: []string{"t"}}
	if err := st.PutNode(ctx, &full); err != nil {
		t.Fatal(err)
	}
	p := NewPlacer(api.NodeJobMaster, time.Minute)
	if p.NoneCanTake("t", nil) {
		t.Fatal("a placer that has seen no node yet says none can take a placement")
	}
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx, st, zap.NewNop()) }()
	natstest.Eventually(t, 10*time.Second, "the watch to sync", func() bool { return p.NoneCanTake("t", nil) })
	if p.Nodes() != 1 {
		t.Fatalf("the placer knows %d nodes, want the full one", p.Nodes())
	}
	free := api.Node{ID: "free", Kind: api.NodeJobMaster, Capacity: 1, Types: []string{"t"}, Labels: map[string]string{"zone": "a"}}
	if err := st.PutNode(ctx, &free); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*time.Second, "the free node to be known", func() bool { return !p.NoneCanTake("t", nil) })
	for _, c := range []struct {
		typ string
		sel map[string]string
	}{{"other", nil}, {"t", map[string]string{"zone": "b"}}} {
		if !p.NoneCanTake(c.typ, c.sel) {
			t.Errorf("NoneCanTake(%s, %v) = false: no node serves it", c.typ, c.sel)
		}
	}
	// Asking does not count a placement: the free node's one slot is still there.
	for range 3 {
		p.NoneCanTake("t", nil)
	}
	if n, err := p.Pick("t", nil, ""); err != nil || n != "free" {
		t.Fatalf("Pick = %s, %v; want the free node", n, err)
	}
	if !p.NoneCanTake("t", nil) {
		t.Fatal("the free node's one slot was taken, yet NoneCanTake says a node can take another")
	}
	cancel()
	<-done
	if p.NoneCanTake("other", nil) {
		t.Fatal("a placer whose watch stopped still says it knows every node")
	}
}
