package runtime

import (
	"sync"
	"sync/atomic"

	"github.com/drover-run/drover/internal/gopool"
)

// runPool runs queued tasks in order on at most max goroutines, which live
// while the queue has work. A master's placements are thousands of short
// tasks, each a record write and a request whose JSON and NATS calls grow a
// goroutine's stack to tens of KB: with a goroutine per task, each started
// with a new stack and grew (copied) it, a quarter of a fresh job-master
// node's CPU while it placed 10,000 workers. The pool's goroutines keep
// theirs from task to task, and a task waiting its turn is an entry in a
// queue, not a goroutine. The bound is the one of the semaphore it replaces.
type runPool struct {
	max int

	mu    sync.Mutex
	queue []func()
	live  int

	started atomic.Int64 // goroutines started, for tests
}

func newRunPool(max int) *runPool { return &runPool{max: max} }

// submit queues f; it never blocks. A task that must not run once its
// master stopped checks that itself: every task queued runs.
func (p *runPool) submit(f func()) {
	p.mu.Lock()
	p.queue = append(p.queue, f)
	if p.live == p.max {
		p.mu.Unlock()
		return
	}
	p.live++
	p.mu.Unlock()
	p.started.Add(1)
	gopool.Go(p.loop)
}

// do runs f on the pool and waits for it.
func (p *runPool) do(f func()) {
	done := make(chan struct{})
	p.submit(func() {
		defer close(done)
		f()
	})
	<-done
}

func (p *runPool) loop() {
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.queue = nil // the burst's backing array goes with it
			p.live--
			p.mu.Unlock()
			return
		}
		f := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.mu.Unlock()
		f()
	}
}
