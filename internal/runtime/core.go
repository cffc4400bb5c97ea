package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-run/drover/internal/gopool"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
)

// DefaultCallbackTimeout bounds one job callback when the node sets none.
const DefaultCallbackTimeout = time.Minute

// core is what a master and a worker incarnation share: the stop signal,
// the one rule for a newer epoch (a refused write is counted, logged and
// stops the incarnation), the pending exit request, and the guarded call
// of job code.
//
// Job code runs on a goroutine of its own, one call at a time, under a
// recover and a time bound: a panic or an overrun fails this incarnation
// and nothing else. An overrun call's goroutine is abandoned; once the
// incarnation has ended, its handles and its KV refuse to act (ErrFenced),
// so the abandoned code cannot write under an epoch that is gone.
type core struct {
	role    string // "master" or "worker": the metric label
	metrics *Metrics
	log     func() *zap.Logger
	bound   time.Duration
	// onExit runs after an exit request was recorded (the master wakes its loop).
	onExit func()

	stopOnce sync.Once
	stopCh   chan struct{}
	fencedCh chan error

	exitMu  sync.Mutex
	exitReq *exitRequest

	jobq  chan func()
	hung  atomic.Bool
	ended atomic.Bool

	// What the job's code writes through (attach): its business KV,
	// fenced by the incarnation; its storage; its metrics, unregistered
	// when the incarnation ends.
	kv   jobKV
	stor *storage
	reg  *trackingRegisterer
}

type exitRequest struct {
	reason framework.ExitReason
	err    error
	detail any
	// status, when set, is a worker's final status, written with its end
	// (WorkerHandle.ExitWithStatus).
	status json.RawMessage
}

func newCore(role string, metrics *Metrics, log func() *zap.Logger, bound time.Duration) *core {
	if bound <= 0 {
		bound = DefaultCallbackTimeout
	}
	return &core{role: role, metrics: metrics, log: log, bound: bound,
		stopCh: make(chan struct{}), fencedCh: make(chan error, 1), jobq: make(chan func())}
}

// attach gives the incarnation the job-facing resources of job: its
// business KV fenced by fence, storage, and a registerer adding labels.
func (c *core) attach(st ScratchState, job string, fence *kvstate.Fence, scfg StorageConfig,
	reg prometheus.Registerer, labels prometheus.Labels) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	c.reg = newTrackingRegisterer(prometheus.WrapRegistererWith(labels, reg))
	c.kv = newJobKV(st.Business(job, fence, c.refused), c)
	c.stor = newStorage(scfg, st, job, c.kv)
}

// begin starts the goroutine job code runs on; end stops it once the
// incarnation is over (an abandoned call keeps it until that call returns).
func (c *core) begin() {
	gopool.Go(func() {
		for f := range c.jobq {
			f()
		}
	})
}

func (c *core) end() {
	if c.ended.CompareAndSwap(false, true) {
		close(c.jobq)
	}
}

// isEnded reports whether the incarnation is over, or its job code was
// abandoned: its handles refuse.
func (c *core) isEnded() bool { return c.ended.Load() || c.hung.Load() }

// Stop ends the incarnation without any write (hand-over, forced stop).
func (c *core) Stop() { c.stopOnce.Do(func() { close(c.stopCh) }) }

// stopped reports whether Stop was called.
func (c *core) stopped() bool {
	select {
	case <-c.stopCh:
		return true
	default:
		return false
	}
}

// stale tells the loop a newer epoch exists: it stops at once.
func (c *core) stale(err error) {
	select {
	case c.fencedCh <- err:
	default:
	}
}

// refused counts and logs one write the server refused because a newer
// epoch exists (the proof, per write, that a stale incarnation did not
// act), then stops the incarnation.
func (c *core) refused(err error) {
	c.metrics.FencedWrites.WithLabelValues(c.role).Inc()
	c.log().Warn("write refused: a newer epoch exists", zap.Error(err))
	c.stale(err)
}

// checkWrite is the rule every write of the runtime goes through: an error
// saying a newer epoch exists is refused(err); it reports whether it was.
func (c *core) checkWrite(err error) bool {
	if isStale(err) {
		c.refused(err)
		return true
	}
	return false
}

func isStale(err error) bool { return err != nil && errors.Is(err, kvstate.ErrStaleEpoch) }

// requestExit records the job's Exit; the first one wins. An unknown
// reason is never written: it becomes a failure that says so.
func (c *core) requestExit(reason framework.ExitReason, err error, detail any) {
	c.requestExitStatus(reason, err, detail, nil)
}

// requestExitStatus is requestExit with a worker's final status.
func (c *core) requestExitStatus(reason framework.ExitReason, err error, detail any, status json.RawMessage) {
	switch reason {
	case framework.ExitFinished, framework.ExitFailed, framework.ExitCanceled:
	default:
		err = framework.Permanent(api.Errorf(api.CodeInvalidArgument,
			"Exit called with unknown reason %q (want finished, failed or canceled)", reason))
		reason = framework.ExitFailed
	}
	c.exitMu.Lock()
	if c.exitReq == nil {
		c.exitReq = &exitRequest{reason: reason, err: err, detail: detail, status: status}
	}
	c.exitMu.Unlock()
	if c.onExit != nil {
		c.onExit()
	}
}

// takeExit returns the pending exit request, if any.
func (c *core) takeExit() *exitRequest {
	c.exitMu.Lock()
	defer c.exitMu.Unlock()
	return c.exitReq
}

// call runs job code f guarded (see guard). A stale error it returns
// stops the incarnation and is not a failure: the refused write inside
// was counted where it happened.
func (c *core) call(what string, f func() error) error {
	err := c.guard(what, f)
	if isStale(err) {
		c.stale(err)
		return nil
	}
	return err
}

// guard runs f on the job goroutine and waits for it at most the callback
// bound. A panic comes back as a job_panic error (stack in the log), an
// overrun as job_hung; after an overrun no job code runs any more.
func (c *core) guard(what string, f func() error) error {
	if c.isEnded() {
		return api.Errorf(api.CodeJobHung, "%s not called: an earlier callback of this incarnation never returned", what)
	}
	done := make(chan error, 1)
	c.jobq <- func() { done <- c.protect(what, f) }
	t := time.NewTimer(c.bound)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		c.hung.Store(true)
		c.metrics.CallbackFailures.WithLabelValues(c.role, "hung").Inc()
		c.log().Error("job callback did not return in time; the incarnation fails and the call is abandoned",
			zap.String("callback", what), zap.Duration("bound", c.bound))
		return api.Errorf(api.CodeJobHung, "%s did not return within %s", what, c.bound)
	}
}

// protect runs f, turning a panic into a job_panic error.
func (c *core) protect(what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.metrics.CallbackFailures.WithLabelValues(c.role, "panic").Inc()
			c.log().Error("job callback panicked; the incarnation fails", zap.String("callback", what),
				zap.String("panic", fmt.Sprint(p)), zap.ByteString("stack", debug.Stack()))
			err = api.Errorf(api.CodeJobPanic, "%s panicked: %s", what, clip(fmt.Sprint(p), 512))
		}
	}()
	return f()
}

// fencedErr logs why the incarnation stops for a newer epoch and returns the
// error its Run ends with.
func (c *core) fencedErr(err error) error {
	c.log().Warn(c.role+" fenced by a newer epoch, stopping", zap.Error(err))
	return fmt.Errorf("%w: %v", framework.ErrFenced, err)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
