// Package gopool starts tasks on goroutines that outlive them, so that a
// task does not pay for growing a fresh goroutine's stack.
//
// A goroutine starts with a few KB of stack; the JSON and NATS calls of a
// request handler, an assignment or a master's run grow it to tens of KB,
// copying it at each doubling. The services start such goroutines per
// request and per job (end to end, a counter job started about ten), and
// the copies were 6 % of the end-to-end benchmark's CPU. A goroutine of
// the pool whose task has ended waits a moment for the next one, which
// then runs on a stack already grown.
package gopool

import (
	"sync/atomic"
	"time"
)

// idle is how long a goroutine whose task ended waits for another before
// it exits: long enough to carry a busy service's tasks from one to the
// next, short enough that an idle process keeps no goroutine of the pool
// for long. Tests change it (idleNanos).
const idle = 500 * time.Millisecond

var idleNanos atomic.Int64

func init() { idleNanos.Store(int64(idle)) }

// tasks hands a task to a goroutine waiting for one; unbuffered, so a
// task is never queued behind another: it runs at once, on a waiting
// goroutine or a new one.
var tasks = make(chan func())

// started counts the goroutines the pool started, for tests.
var started atomic.Int64

// Go runs f on a goroutine of its own, as the go statement does: on one
// that waits for a task if there is one, else on a new one. A panic in f
// is not recovered (it ends the process, as it would have).
func Go(f func()) {
	select {
	case tasks <- f:
	default:
		started.Add(1)
		go run(f)
	}
}

// run runs f, then each task handed to it until none came for idle.
func run(f func()) {
	t := time.NewTimer(time.Duration(idleNanos.Load()))
	defer t.Stop()
	for {
		f()
		f = nil // what the task held is not kept while waiting
		t.Reset(time.Duration(idleNanos.Load()))
		if f = wait(t); f == nil {
			return
		}
	}
}

// wait is where a goroutine of the pool waits for its next task (tests
// that look for leaked goroutines recognise it by this name).
func wait(t *time.Timer) func() {
	select {
	case f := <-tasks:
		return f
	case <-t.C:
		return nil
	}
}
