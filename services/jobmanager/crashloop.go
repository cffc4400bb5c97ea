package jobmanager

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
)

// Crash loops. A job whose master takes its node down (a crash in cgo, an
// out-of-memory kill) would, moved from node to node, take down one node
// after another with every other job's master on them. The leader counts,
// in the job record, the failovers in a row that coincided with the death
// of the master's node (Job.Crashes); a master that runs for the crash
// probation resets it.
//
//   - One death proves nothing: the job fails over at once, like every
//     other job of that node.
//   - From the second death in a row the job is a suspect: suspects run one
//     at a time (the probation slot), after a backoff doubling with each
//     death, so the next node death names its cause.
//   - At the crash-loop limit the job is failed with crash_loop instead of
//     being moved again.
//
// A job that shares a node with a culprit gains at most one death per
// culprit crash, and as a suspect it runs alone, where it survives its
// probation: only the job that kills its nodes reaches the limit.

// crashBackoffBase is the failover backoff of a suspect with two deaths;
// it doubles with each further death, up to the restart backoff ceiling.
const crashBackoffBase = 100 * time.Millisecond

// nodeDied reports whether a failover reason means the master's node died
// (or went silent), as opposed to a hand-over or a restart.
func nodeDied(reason string) bool { return reason == "timeout" || reason == "disconnect" }

// mayStart reports whether a job with crashes deaths in a row may get a
// master now: always below two; a suspect waits out its backoff, then for
// the probation slot.
func (l *leader) mayStart(lj *ljob, crashes int, now time.Time) bool {
	if crashes < 2 {
		return true
	}
	id := lj.job.ID
	if !lj.crashWait {
		lj.crashWait = true
		backoff := crashBackoffBase << min(crashes-2, 16)
		lj.retryAt = now.Add(min(backoff, l.s.cfg.RestartMaxBackoff))
		return false
	}
	if l.probation != "" && l.probation != id {
		holder := l.jobs[l.probation]
		// A holder that cannot get a master (no capacity) does not keep
		// the slot for ever.
		if holder != nil && now.Sub(l.probationSince) < 4*l.s.cfg.crashProbation() {
			lj.retryAt = now.Add(reconcileInterval)
			return false
		}
	}
	if l.probation != id {
		l.probation, l.probationSince = id, now
		l.jlog(id, lj.job.Epoch, lj.job.Node).Warn("crash-loop suspect on probation: it runs alone among suspects",
			zap.Int("crashes", crashes))
	}
	return true
}

// acquit resets the crash count of a job whose master ran for the crash
// probation, and frees the probation slot.
func (l *leader) acquit(lj *ljob) {
	cur, rev := lj.job, lj.rev
	if l.probation == cur.ID {
		l.probation = ""
	}
	l.do(lj, func(ctx context.Context) func() {
		updated, nrev, err := l.s.updateJobFrom(ctx, cur, rev, func(j *api.Job) error {
			if j.State.Terminal() || j.Epoch != cur.Epoch || j.Crashes == 0 {
				return kvstate.ErrNoChange
			}
			j.Crashes = 0
			return nil
		})
		if err != nil {
			return nil
		}
		l.jlog(cur.ID, cur.Epoch, cur.Node).Info("master survived its crash probation; crash count reset")
		return func() { lj.set(updated, nrev) }
	})
}

// quarantine fails a job whose masters' nodes died under it crashes times
// in a row.
func (l *leader) quarantine(lj *ljob, crashes int) {
	j := lj.job
	if l.probation == j.ID {
		l.probation = ""
	}
	l.s.metrics.crashLoops.Inc()
	l.jlog(j.ID, j.Epoch, j.Node).Error("crash loop: the job's master nodes keep dying under it; failing it",
		zap.Int("crashes", crashes))
	l.endByForce(lj, "record crash loop", func(j *api.Job) {
		j.State, j.Crashes = api.StateFailed, crashes
		j.Error = api.Errorf(api.CodeCrashLoop,
			"the job-master nodes running this job's master died %d times in a row; the job is failed instead of being moved again", crashes)
	})
}
