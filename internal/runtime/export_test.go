package runtime

import "time"

// SlowCreateReplies delays every master's handling of create replies by d
// until the test ends.
func SlowCreateReplies(d time.Duration) (restore func()) {
	afterCreate = func() { time.Sleep(d) }
	return func() { afterCreate = nil }
}
