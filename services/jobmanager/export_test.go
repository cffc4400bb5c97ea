package jobmanager

import "time"

// TerminalEventWait is how long a delete waits for a job's terminal event.
const TerminalEventWait = terminalEventWait

// DelayTerminalEvents holds back every terminal state event by d after
// its record is written, until restore.
func DelayTerminalEvents(d time.Duration) (restore func()) {
	terminalEventDelay.Store(int64(d))
	return func() { terminalEventDelay.Store(0) }
}
