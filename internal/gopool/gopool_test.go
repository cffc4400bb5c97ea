package gopool

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
)

// waiting counts the pool's goroutines parked waiting for a task (a
// goroutine on its way there could not take one yet).
func waiting() int {
	n := 0
	for _, g := range strings.Split(natstest.Goroutines(), "\n\n") {
		if strings.Contains(g, " [select") && strings.Contains(g, "internal/gopool.wait(") {
			n++
		}
	}
	return n
}

// setIdle makes the pool's goroutines wait d for a task, until the test
// ends. A goroutine waiting already keeps its timer: at the end, those
// waiting are handed an empty task, so that they wait the usual time, not
// d, before they exit.
func setIdle(t *testing.T, d time.Duration) {
	idleNanos.Store(int64(d))
	t.Cleanup(func() {
		idleNanos.Store(int64(idle))
		for range 64 {
			select {
			case tasks <- func() {}:
			default:
				return
			}
		}
	})
}

func TestTasksReuseAGoroutineThatWaits(t *testing.T) {
	natstest.Eventually(t, 10*idle, "goroutines of earlier tests still wait", func() bool { return waiting() == 0 })
	// Long enough that no stall of a busy machine lets the goroutine exit
	// between two tasks.
	setIdle(t, time.Minute)
	n0 := started.Load()
	done := make(chan struct{})
	Go(func() { close(done) })
	<-done
	natstest.Eventually(t, 10*idle, "the first task's goroutine never waited for another", func() bool { return waiting() == 1 })
	for i := range 100 {
		done := make(chan int)
		Go(func() { done <- i })
		if got := <-done; got != i {
			t.Fatalf("task %d ran as %d", i, got)
		}
		natstest.Eventually(t, 10*idle, "a goroutine did not wait again after its task", func() bool { return waiting() == 1 })
	}
	if n := started.Load() - n0; n != 1 {
		t.Fatalf("101 tasks one after the other started %d goroutines, want 1", n)
	}
}

func TestABusyPoolNeverQueuesATask(t *testing.T) {
	// Tasks that wait for each other: each must start at once, on a
	// goroutine of its own, or they never end.
	const n = 50
	var all sync.WaitGroup
	all.Add(n)
	release := make(chan struct{})
	for range n {
		Go(func() {
			all.Done()
			<-release
		})
	}
	ok := make(chan struct{})
	go func() { all.Wait(); close(ok) }()
	select {
	case <-ok:
	case <-time.After(10 * time.Second):
		t.Fatal("tasks handed to the pool did not all start while the others ran")
	}
	close(release)
}

func TestAnIdlePoolKeepsNoGoroutine(t *testing.T) {
	setIdle(t, 50*time.Millisecond)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		Go(wg.Done)
	}
	wg.Wait()
	// (That they wait at all, TestTasksReuseAGoroutineThatWaits shows.)
	natstest.Eventually(t, 10*time.Second, "the pool's goroutines still live long after their last task", func() bool {
		return !strings.Contains(natstest.Goroutines(), "internal/gopool.run(")
	})
}
