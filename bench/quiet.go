package main

import (
	"strconv"
	"strings"
	"time"
)

// Before each phase the machine must be quiet: a phase that leaves
// processes winding down (10,000 masters stopping, a server deleting
// streams) took CPU from the next one — the wordcount phase once started
// at load average 10 right after live10k and measured 0.67× its baseline,
// 0.82–0.88× when run alone.
const (
	quietBusy = 0.25 // at most this share of the machine's CPUs busy
	quietSpan = 500 * time.Millisecond
	quietMax  = 30 * time.Second // then the phase starts anyway, and says so
)

// waitQuiet waits until the machine's CPUs are busy less than quietBusy
// over quietSpan, at most quietMax; it returns how long it waited and the
// busy share last seen (-1 where /proc/stat does not say).
func waitQuiet() (time.Duration, float64) { return waitQuietFor(quietSpan, quietMax) }

// waitQuietFor waits until the CPUs are busy less than quietBusy over
// span, at most limit.
func waitQuietFor(span, limit time.Duration) (time.Duration, float64) {
	t0 := time.Now()
	for {
		busy := busyShare(span)
		if busy < quietBusy || time.Since(t0) >= limit { // -1: no /proc/stat, no wait
			return time.Since(t0), busy
		}
	}
}

// busyShare is the share of all CPUs busy over d, from /proc/stat.
func busyShare(d time.Duration) float64 {
	b0, t0 := cpuTimes()
	time.Sleep(d)
	b1, t1 := cpuTimes()
	if t1 <= t0 {
		return -1
	}
	return float64(b1-b0) / float64(t1-t0)
}

// cpuTimes is the machine's busy and total CPU time (clock ticks) so far.
func cpuTimes() (busy, total uint64) {
	busy, total, _ = cpuLine(readTrim("/proc/stat"))
	return busy, total
}

// cpuLine reads the first line of /proc/stat: the busy, total and stolen
// CPU time (clock ticks; stolen: time the hypervisor ran other machines
// while this one had work, counted as busy). Guest time is left out, as
// the kernel counts it in user time already.
func cpuLine(stat string) (busy, total, steal uint64) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, 0
	}
	for i, s := range f[1:] {
		if i >= 8 { // guest, guest_nice
			break
		}
		v, _ := strconv.ParseUint(s, 10, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
		if i == 7 {
			steal = v
		}
	}
	return busy, total, steal
}
