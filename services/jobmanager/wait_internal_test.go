package jobmanager

import (
	"fmt"
	"testing"

	"github.com/drover-run/drover/pkg/api"
)

// TestWaitQueueStaysBoundedAsWaitingJobsEnd: jobs of a class no node can
// take are canceled or deleted while they wait, many more than stay. The
// queue keeps no more than a bounded share of their stale entries, and
// forgets none of the jobs still waiting, in their order.
func TestWaitQueueStaysBoundedAsWaitingJobsEnd(t *testing.T) {
	l := &leader{jobs: map[string]*ljob{}, active: map[string]*ljob{}, waiting: map[string]*waitQueue{}}
	var kept []string
	for i := range 10_000 {
		id := fmt.Sprintf("j%d", i)
		lj := &ljob{job: &api.Job{ID: id, Type: "counter", Selectors: map[string]string{"zone": "nowhere"}}}
		l.jobs[id], l.active[id] = lj, lj
		l.wait(lj)
		if i%100 == 0 {
			kept = append(kept, id)
			continue
		}
		if i%2 == 0 {
			l.drop(id) // ended
		} else {
			l.wake(lj) // woken (say, canceling), then ended
			l.drop(id)
		}
	}
	if len(l.waiting) != 1 {
		t.Fatalf("%d classes, want 1", len(l.waiting))
	}
	for _, q := range l.waiting {
		if q.live != len(kept) {
			t.Fatalf("live %d, want %d", q.live, len(kept))
		}
		if n := len(q.entries) - q.head; n > 2*q.live+65 {
			t.Fatalf("%d entries kept for %d waiting jobs", n, q.live)
		}
		var order []string
		for _, e := range q.entries[q.head:] {
			if l.waits(e) {
				order = append(order, e.lj.job.ID)
			}
		}
		if fmt.Sprint(order) != fmt.Sprint(kept) {
			t.Fatalf("waiting jobs %v, want %v", order, kept)
		}
	}
	// A class is its type, selectors and the node to avoid.
	a := &ljob{job: &api.Job{Type: "t", Selectors: map[string]string{"a": "1", "b": "2"}}}
	b := &ljob{job: &api.Job{Type: "t", Selectors: map[string]string{"b": "2", "a": "1"}}}
	c := &ljob{job: &api.Job{Type: "t", Selectors: map[string]string{"a": "1", "b": "2"}}, leftNode: "n1"}
	if waitClass(a) != waitClass(b) || waitClass(a) == waitClass(c) {
		t.Fatalf("classes: %q %q %q", waitClass(a), waitClass(b), waitClass(c))
	}
}
