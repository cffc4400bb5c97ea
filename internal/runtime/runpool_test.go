package runtime

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
)

// TestRunPoolBoundsAndReuses: a pool of n runs every task queued, never
// more than n at once; a burst runs on n goroutines reused from task to task
// (a new goroutine per task started with a new stack and grew it again),
// which end with the burst; submit never blocks, even with every goroutine
// busy.
func TestRunPoolBoundsAndReuses(t *testing.T) {
	const n, tasks = 8, 2000
	p := newRunPool(n)
	var running, peak, ran atomic.Int64
	var wg sync.WaitGroup
	release := make(chan struct{})
	task := func() {
		defer wg.Done()
		<-release // every goroutine busy until all are queued
		r := running.Add(1)
		for {
			if old := peak.Load(); r <= old || peak.CompareAndSwap(old, r) {
				break
			}
		}
		time.Sleep(10 * time.Microsecond)
		running.Add(-1)
		ran.Add(1)
	}
	wg.Add(tasks)
	queued := make(chan struct{})
	go func() {
		defer close(queued)
		for range tasks {
			p.submit(task)
		}
	}()
	select {
	case <-queued:
	case <-time.After(10 * time.Second):
		t.Fatalf("submit blocked behind %d busy goroutines", n)
	}
	if s := p.started.Load(); s != n {
		t.Fatalf("%d goroutines for %d queued tasks, want the bound, %d", s, tasks, n)
	}
	close(release)
	wg.Wait()
	if ran.Load() != tasks {
		t.Fatalf("ran %d tasks of %d", ran.Load(), tasks)
	}
	if peak.Load() > n {
		t.Fatalf("%d tasks ran at once, the bound is %d", peak.Load(), n)
	}
	natstest.Eventually(t, 5*time.Second, "the pool's goroutines to end with the queue", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.live == 0 && len(p.queue) == 0
	})
	var got atomic.Int64
	p.do(func() { got.Store(42) })
	if got.Load() != 42 {
		t.Fatal("do returned before its task ran")
	}
}
