package placement

import (
	"errors"
	"testing"
	"time"

	"github.com/drover-run/drover/pkg/api"
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
