package jobmanager

import "time"

// TerminalEventWait is how long a delete waits for a job's terminal event.
const TerminalEventWait = terminalEventWait

// DelayTerminalEvents holds back every terminal state event by d after
// its record is written, until restore.
func DelayTerminalEvents(d time.Duration) (restore func()) {
	heldTerminalEvents.Store(0)
	terminalEventDelay.Store(int64(d))
	return func() { terminalEventDelay.Store(0) }
}

// HeldTerminalEvents is how many terminal events DelayTerminalEvents held
// back have been sent, each received by the server before it counts.
func HeldTerminalEvents() int64 { return heldTerminalEvents.Load() }
