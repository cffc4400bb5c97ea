package runtime

import "time"

// alignedTicker ticks on the wall clock's multiples of its interval, so
// the incarnations of a process (and of every process) with the same
// interval tick in the same instant. Their heartbeats and writes then
// leave in one system call per connection and are read in one by the
// server, and the process wakes once per interval instead of once per
// incarnation: with thousands of incarnations, one wake-up and one small
// write each, spread over the interval, were most of what they cost.
//
// Like time.Ticker it drops ticks the receiver is too slow for; call Next
// after each receive.
type alignedTicker struct {
	d time.Duration
	t *time.Timer
}

func newAlignedTicker(d time.Duration) *alignedTicker {
	return &alignedTicker{d: d, t: time.NewTimer(untilBoundary(d))}
}

func (a *alignedTicker) C() <-chan time.Time { return a.t.C }

// Next arms the ticker for the next boundary.
func (a *alignedTicker) Next() { a.t.Reset(untilBoundary(a.d)) }

func (a *alignedTicker) Stop() { a.t.Stop() }

// untilBoundary is the time until the wall clock's next multiple of d.
func untilBoundary(d time.Duration) time.Duration {
	now := time.Now()
	return boundaryAfter(now, d).Sub(now)
}

// boundaryAfter is the first multiple of d (counted from the zero time,
// which is a whole number of seconds before the Unix epoch) after now.
func boundaryAfter(now time.Time, d time.Duration) time.Time {
	return now.Truncate(d).Add(d)
}
