package runtime

import (
	"errors"
	"time"
)

// SlowCreateReplies delays every master's handling of create replies by d
// until the test ends.
func SlowCreateReplies(d time.Duration) (restore func()) {
	afterCreate = func(err error) error { time.Sleep(d); return err }
	return func() { afterCreate = nil }
}

// FailCreateReplies makes every master take d to handle a create reply and
// then treat it as failed, though the worker was started, until the test
// ends.
func FailCreateReplies(d time.Duration) (restore func()) {
	afterCreate = func(err error) error {
		time.Sleep(d)
		if err == nil {
			err = errors.New("injected: create reply lost")
		}
		return err
	}
	return func() { afterCreate = nil }
}

// SlowWorkerLoad delays every master's read of its worker records by d
// (after it subscribed to its inbox) until restore is called.
func SlowWorkerLoad(d time.Duration) (restore func()) {
	f := func() { time.Sleep(d) }
	beforeLoadWorkers.Store(&f)
	return func() { beforeLoadWorkers.Store(nil) }
}

// DropHeartbeats makes every master ignore worker heartbeats (as a master
// whose inbox overflowed would) until restore is called.
func DropHeartbeats() (restore func()) {
	dropHeartbeats.Store(true)
	return func() { dropHeartbeats.Store(false) }
}

// MaxStopsPerBatch is maxStopsPerBatch, for the tests of forged heartbeats.
const MaxStopsPerBatch = maxStopsPerBatch
