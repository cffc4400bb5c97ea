package gopool

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// waiting counts the pool's goroutines parked waiting for a task (a
// goroutine on its way there could not take one yet).
func waiting() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, " [select") && strings.Contains(g, "internal/gopool.wait(") {
			n++
		}
	}
	return n
}

// eventually waits up to limit for cond.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTasksReuseAGoroutineThatWaits(t *testing.T) {
	eventually(t, 10*idle, "goroutines of earlier tests still wait", func() bool { return waiting() == 0 })
	n0 := started.Load()
	done := make(chan struct{})
	Go(func() { close(done) })
	<-done
	eventually(t, 10*idle, "the first task's goroutine never waited for another", func() bool { return waiting() == 1 })
	for i := range 100 {
		done := make(chan int)
		Go(func() { done <- i })
		if got := <-done; got != i {
			t.Fatalf("task %d ran as %d", i, got)
		}
		eventually(t, 10*idle, "a goroutine did not wait again after its task", func() bool { return waiting() == 1 })
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
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		Go(wg.Done)
	}
	wg.Wait()
	if waiting() == 0 {
		t.Fatal("no goroutine waits for a task right after 20 ended")
	}
	eventually(t, 20*idle, "the pool's goroutines still wait long after their last task", func() bool { return waiting() == 0 })
}
