package runtime

import (
	"testing"
	"time"
)

// TestTicksFallOnTheIntervalsBoundaries: every incarnation with the same
// interval, wherever in the interval it started, ticks next at the same
// instant, a multiple of the interval on the wall clock, within one
// interval.
func TestTicksFallOnTheIntervalsBoundaries(t *testing.T) {
	base := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	for _, d := range []time.Duration{time.Millisecond, 100 * time.Millisecond, time.Second, 3 * time.Second} {
		first := boundaryAfter(base.Add(1), d)
		for _, off := range []time.Duration{1, d / 3, d / 2, d - 1} {
			now := base.Add(off)
			b := boundaryAfter(now, d)
			if b != first {
				t.Errorf("interval %s, started %s into it: next tick %s, another incarnation's %s", d, off, b, first)
			}
			if !b.After(now) || b.Sub(now) > d {
				t.Errorf("interval %s at %s: next tick %s is not within the next interval", d, now, b)
			}
			if b.UnixNano()%int64(d) != 0 {
				t.Errorf("interval %s: next tick %s is not a multiple of it on the wall clock", d, b)
			}
		}
		// On a boundary, the next one.
		if b := boundaryAfter(first, d); b.Sub(first) != d {
			t.Errorf("interval %s on a boundary: next tick %s after it, want %s", d, b.Sub(first), d)
		}
	}
}
