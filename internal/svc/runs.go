package svc

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/drover-run/drover/internal/gopool"
	"github.com/drover-run/drover/internal/runtime"
	"github.com/drover-run/drover/pkg/api"
)

// Incarnation is a master or worker incarnation a node runs.
type Incarnation interface {
	Epoch() uint64
	Run(ctx context.Context) error
	Stop()
}

// Runs is the set of incarnations a node runs, one per key (a job, or a
// job's worker): a retried start of the same epoch is a no-op, an older
// epoch is refused, a newer one replaces the running one, and nothing
// starts past capacity or once the node is closing.
type Runs[I Incarnation] struct {
	node     string
	what     string
	capacity int
	mu       sync.Mutex
	running  map[string]I
	closing  bool
	wg       sync.WaitGroup
}

// NewRuns returns an empty set; what names an incarnation in errors.
func NewRuns[I Incarnation](node, what string, capacity int) *Runs[I] {
	return &Runs[I]{node: node, what: what, capacity: capacity, running: map[string]I{}}
}

// Start runs the incarnation build returns under key, unless the same or a
// newer epoch already runs there. ended is called (off the lock) when a
// run ends with anything but runtime.ErrStopped.
func (r *Runs[I]) Start(key string, epoch uint64, build func() (I, error), ended func(I, error)) error {
	run, err := r.Prepare(key, epoch, build, ended)
	if err != nil {
		return err
	}
	run()
	return nil
}

// Prepare is Start without the run: the incarnation holds its place (a
// later start of an older epoch is refused, StopUpTo stops it before it
// runs, Close waits for it) and runs once run is called, which the caller
// must do. A node answers an assignment between the two, so the leader
// hears it was taken before the job's code can do anything, the node's
// death included. A retried start of the running epoch gives a run that
// does nothing.
func (r *Runs[I]) Prepare(key string, epoch uint64, build func() (I, error), ended func(I, error)) (run func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return nil, api.Errorf(api.CodeUnavailable, "node %s is shutting down", r.node)
	}
	if old, ok := r.running[key]; ok {
		switch {
		case old.Epoch() == epoch:
			return func() {}, nil // a retried start: already running
		case old.Epoch() > epoch:
			return nil, api.Errorf(api.CodeFailedPrecondition, "%s %s already runs a newer epoch on node %s", r.what, key, r.node)
		}
		old.Stop()
	} else if len(r.running) >= r.capacity {
		return nil, api.Errorf(api.CodeUnavailable, "node %s is full (%d %ss)", r.node, r.capacity, r.what)
	}
	inc, err := build()
	if err != nil {
		return nil, err
	}
	r.running[key] = inc
	r.wg.Add(1)
	return func() {
		gopool.Go(func() {
			defer r.wg.Done()
			err := inc.Run(context.Background())
			if err != nil && !errors.Is(err, runtime.ErrStopped) && ended != nil {
				ended(inc, err)
			}
			r.mu.Lock()
			if cur, ok := r.running[key]; ok && any(cur) == any(inc) {
				delete(r.running, key)
			}
			r.mu.Unlock()
		})
	}, nil
}

// StopUpTo stops the incarnation under key if its epoch is at most epoch.
func (r *Runs[I]) StopUpTo(key string, epoch uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if inc, ok := r.running[key]; ok && inc.Epoch() <= epoch {
		inc.Stop()
	}
}

// Len returns how many incarnations run.
func (r *Runs[I]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running)
}

// Each calls f on every running incarnation, under the lock.
func (r *Runs[I]) Each(f func(I)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, inc := range r.running {
		f(inc)
	}
}

// Close refuses new starts, calls stop on every running incarnation and
// waits up to timeout for them to end; it reports whether they all did.
func (r *Runs[I]) Close(stop func(I), timeout time.Duration) bool {
	r.mu.Lock()
	r.closing = true
	for _, inc := range r.running {
		stop(inc)
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}
