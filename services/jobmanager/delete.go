package jobmanager

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/runtime"
	"github.com/drover-run/drover/pkg/api"
)

// deleteJob removes a terminal job and everything it left: scratch
// objects, master, worker and business records, events, and its job
// record. A job that has not ended is failed_precondition: cancel it
// first. Deleting a job that is gone is not_found.
func (s *Service) deleteJob(ctx context.Context, body []byte) (*api.Job, error) {
	var req api.DeleteRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	j, err := s.jobByID(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	if !j.State.Terminal() {
		return nil, api.Errorf(api.CodeFailedPrecondition, "job %s is %s: cancel it first", j.ID, j.State)
	}
	s.awaitTerminalEvent(ctx, j)
	if err := s.removeJob(ctx, j, "delete"); err != nil {
		return nil, storeError(err)
	}
	return j, nil
}

// terminalEventWait bounds how long a delete waits for the job's terminal
// event to be stored.
const terminalEventWait = 2 * time.Second

// awaitTerminalEvent waits, up to terminalEventWait, until the last event
// the events stream holds of j is its terminal state event. The leader
// publishes that event just after the record says the job ended, and the
// stream stores it in its own time: a delete that came at once (a client
// that waited for the record, then deleted) purged the job's events before
// it, which then stayed alone, in the history of a later job given the same
// ID. Once it is stored, so is every event published before it. A job whose
// terminal event never comes (its leader crashed between the two) is
// deleted when the wait ends.
func (s *Service) awaitTerminalEvent(ctx context.Context, j *api.Job) {
	ctx, cancel := context.WithTimeout(ctx, terminalEventWait)
	defer cancel()
	for {
		ev, err := s.jobs.LastJobEvent(ctx, j.ID)
		if err == nil && ev.Kind == api.EventState && ev.State == j.State {
			return
		}
		select {
		case <-ctx.Done():
			s.log.Info("deleting a job whose terminal event is not stored", jobFields(j, zap.NamedError("last_read", err))...)
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// removeJob deletes an ended job's scratch space (even one it asked to
// keep) and then its records, the job record last.
func (s *Service) removeJob(ctx context.Context, j *api.Job, why string) error {
	n, err := runtime.CleanScratch(ctx, s.scratch, s.cfg.StorageBucket, j.ID, true)
	if err != nil {
		return err
	}
	if err := s.jobs.DeleteJob(ctx, j.ID); err != nil {
		return err
	}
	s.metrics.deleted.WithLabelValues(why).Inc()
	s.log.Info("job deleted", jobFields(j, zap.String("reason", why), zap.Int("scratch_objects", n))...)
	return nil
}

// cleanEndedScratch deletes the scratch space of a job that ended without
// its master doing it: forced cancel, cancel while it waited, or failure
// once its restarts were exhausted (the master keeps the scratch space of a
// retryable failure for the next attempt). A job that asked to keep its
// scratch space keeps it until it is deleted.
func (s *Service) cleanEndedScratch(j *api.Job, reason string) {
	if reason == ReasonMasterFinished || reason == ReasonMasterCanceled {
		return // the master cleaned it
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n, err := runtime.CleanScratch(ctx, s.scratch, s.cfg.StorageBucket, j.ID, false)
		if err != nil {
			s.log.Warn("scratch cleanup", jobFields(j, zap.Int("deleted", n), zap.Error(err))...)
			return
		}
		if n > 0 {
			s.log.Info("scratch deleted", jobFields(j, zap.Int("objects", n), zap.String("reason", reason))...)
		}
	}()
}

// retentionSweeps is how often the leader looks for ended jobs past
// DROVER_RETENTION, as a fraction of it, within bounds.
func retentionSweep(retention time.Duration) time.Duration {
	return min(max(retention/4, 100*time.Millisecond), time.Minute)
}

// sweep deletes, while this replica leads, the jobs that ended more than
// DROVER_RETENTION ago. It reads the jobs bucket in last-change order and
// stops at the first record changed after the cutoff: every later one is
// newer, so a sweep reads the expired jobs and the old unfinished ones,
// not the bucket.
func (s *Service) sweep(ctx context.Context) {
	retention := s.cfg.Retention
	if retention <= 0 {
		retention = defaultRetention
	}
	t := time.NewTicker(retentionSweep(retention))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-retention)
		var after uint64
		for ctx.Err() == nil {
			var expired []*api.Job
			newer := false
			last, end, err := s.jobs.ScanJobs(ctx, after, 1000, func(j *api.Job, _ uint64) bool {
				if j.UpdatedAt.After(cutoff) {
					newer = true
					return false
				}
				if j.State.Terminal() {
					expired = append(expired, j)
				}
				return true
			})
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("retention sweep", zap.Error(err))
				}
				break
			}
			for _, j := range expired {
				if err := s.removeJob(ctx, j, "retention"); err != nil && ctx.Err() == nil {
					s.log.Warn("retention delete", jobFields(j, zap.Error(err))...)
				}
			}
			if newer || end {
				break
			}
			after = last
		}
	}
}
