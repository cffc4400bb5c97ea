package svc

import (
	"context"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/runtime"
	"github.com/drover-run/drover/pkg/api"
)

type fakeInc struct {
	epoch uint64
	stop  chan struct{}
}

func newFake(epoch uint64) *fakeInc { return &fakeInc{epoch: epoch, stop: make(chan struct{})} }

func (f *fakeInc) Epoch() uint64 { return f.epoch }
func (f *fakeInc) Stop() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
}
func (f *fakeInc) Run(context.Context) error { <-f.stop; return runtime.ErrStopped }

func (f *fakeInc) stopped() bool {
	select {
	case <-f.stop:
		return true
	default:
		return false
	}
}

func TestRunsEpochsCapacityAndClose(t *testing.T) {
	r := NewRuns[*fakeInc]("n1", "master", 2)
	build := func(f *fakeInc) func() (*fakeInc, error) { return func() (*fakeInc, error) { return f, nil } }
	a1 := newFake(1)
	if err := r.Start("a", 1, build(a1), nil); err != nil {
		t.Fatal(err)
	}
	// A retried start of the same epoch builds nothing new.
	if err := r.Start("a", 1, func() (*fakeInc, error) { t.Fatal("rebuilt"); return nil, nil }, nil); err != nil {
		t.Fatal(err)
	}
	// A newer epoch replaces and stops the older incarnation.
	a2 := newFake(2)
	if err := r.Start("a", 2, build(a2), nil); err != nil || !a1.stopped() {
		t.Fatalf("newer epoch: %v, old stopped %v", err, a1.stopped())
	}
	// An older epoch is refused.
	if err := r.Start("a", 1, build(newFake(1)), nil); api.ErrorCode(err) != api.CodeFailedPrecondition {
		t.Fatalf("older epoch: %v", err)
	}
	if err := r.Start("b", 1, build(newFake(1)), nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Start("c", 1, build(newFake(1)), nil); api.ErrorCode(err) != api.CodeUnavailable {
		t.Fatalf("past capacity: %v", err)
	}
	r.StopUpTo("a", 1) // a runs epoch 2: untouched
	if a2.stopped() {
		t.Fatal("StopUpTo stopped a newer epoch")
	}
	if !r.Close(func(f *fakeInc) { f.Stop() }, 5*time.Second) {
		t.Fatal("Close timed out")
	}
	if r.Len() != 0 {
		t.Fatalf("%d still running after Close", r.Len())
	}
	if err := r.Start("d", 1, build(newFake(1)), nil); api.ErrorCode(err) != api.CodeUnavailable {
		t.Fatalf("start after close: %v", err)
	}
}

// runningFake records that its Run began.
type runningFake struct {
	*fakeInc
	began chan struct{}
}

func (f *runningFake) Run(ctx context.Context) error { close(f.began); return f.fakeInc.Run(ctx) }

// TestPreparedRunsOnlyWhenTold: a prepared incarnation holds its place
// (an older epoch is refused) but does not run until its run is called,
// so a node answers an assignment before the job's code does anything.
func TestPreparedRunsOnlyWhenTold(t *testing.T) {
	r := NewRuns[*runningFake]("n1", "master", 2)
	f := &runningFake{fakeInc: newFake(2), began: make(chan struct{})}
	run, err := r.Prepare("a", 2, func() (*runningFake, error) { return f, nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start("a", 1, func() (*runningFake, error) { return nil, nil }, nil); api.ErrorCode(err) != api.CodeFailedPrecondition {
		t.Fatalf("older epoch while prepared: %v", err)
	}
	select {
	case <-f.began:
		t.Fatal("ran before its run was called")
	case <-time.After(50 * time.Millisecond):
	}
	run()
	select {
	case <-f.began:
	case <-time.After(5 * time.Second):
		t.Fatal("did not run once told")
	}
	if !r.Close(func(f *runningFake) { f.Stop() }, 5*time.Second) {
		t.Fatal("Close timed out")
	}
}
