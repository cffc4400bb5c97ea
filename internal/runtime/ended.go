package runtime

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
)

// Ended worker incarnations. The job hears of each once: OnWorkerOffline
// (or a failed OnWorkerDispatched), after which the master records the
// incarnation as reported in its worker record, so a recovering master
// delivers only the ends its predecessor died before recording. A crash
// between the callback and that write delivers the end again: at least
// once, once unless a master dies in that window.
//
// The record is written off the loop; a later write of the same worker id
// (a new incarnation's record, RemoveWorker) waits for it, so it never
// lands over them.

// failedByCode reports whether an incarnation that ended with state and
// reason failed by its own code (Exit failed, a panic, a hang): what
// WorkerInfo.Failures counts. A failed dispatch never ran the job's code.
func failedByCode(state, reason string) bool {
	return state == string(kvstate.WorkerFailed) && reason != framework.OfflineDispatchFailed
}

// markReported records, off the loop, that the job was told of the ended
// incarnation info. Nothing is written when the job re-created or removed
// the worker meanwhile: a new record supersedes the old one, and a
// removed one must stay removed. Nor once the job has asked to end for
// good (endsForGood): no master will recover it, so the mark would tell
// nobody anything; should its exit not be stored after all (the master
// dies first), a recovery delivers the end once more, as after any crash
// before the mark. A counter job's last worker ends this way, a write
// saved per job (docs/architecture.md, What a job writes).
func (m *MasterRuntime) markReported(info framework.WorkerInfo) {
	if req := m.takeExit(); req != nil && req.endsForGood() {
		return
	}
	m.mu.Lock()
	w := m.workers[info.ID]
	if w == nil || w.info.Epoch != info.Epoch || w.info.Live() {
		m.mu.Unlock()
		return
	}
	rec := recordFromInfo(m.job.ID, &w.info)
	rec.Reported = true
	prev, done := m.marks[info.ID], make(chan struct{})
	m.marks[info.ID] = done
	m.mu.Unlock()
	ctx := m.ctx
	go func() {
		defer func() {
			m.mu.Lock()
			if m.marks[info.ID] == done {
				delete(m.marks, info.ID)
			}
			m.mu.Unlock()
			close(done)
		}()
		if prev != nil {
			select {
			case <-prev:
			case <-ctx.Done():
				return
			}
		}
		m.pool.do(func() {
			if ctx.Err() != nil {
				return
			}
			_, err := m.deps.Store.PutWorkerAsMaster(ctx, m.fence, rec)
			if err != nil && !m.checkWrite(err) && ctx.Err() == nil {
				// Harmless: a recovery would deliver this end once more.
				m.log.Warn("record worker end as reported", zap.String("worker_id", info.ID),
					zap.Uint64("worker_epoch", info.Epoch), zap.Error(err))
			}
		})
	}()
}

// endsForGood reports whether the exit leaves the job terminal: finished,
// canceled, or failed for a reason no restart can help (the leader restarts
// a job whose master failed retryably, and its recovery reads the marks).
func (r *exitRequest) endsForGood() bool {
	return r.reason != framework.ExitFailed || r.err == nil || framework.IsPermanent(r.err)
}

// awaitMark waits until no reported-mark write of worker id is in flight;
// false when the master ends first.
func (m *MasterRuntime) awaitMark(id string) bool {
	m.mu.Lock()
	ch := m.marks[id]
	m.mu.Unlock()
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-m.ctx.Done():
		return false
	case <-m.stopCh:
		return false
	}
}

// known reports whether info is still the master's current incarnation
// of its worker id (not re-created, not removed).
func (m *MasterRuntime) known(info framework.WorkerInfo) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.workers[info.ID]
	return w != nil && w.info.Epoch == info.Epoch
}

func (h *masterHandle) RemoveWorker(ctx context.Context, id string) error {
	m := h.m
	if m.isEnded() {
		return errEnded
	}
	m.mu.Lock()
	w := m.workers[id]
	switch {
	case w == nil:
		m.mu.Unlock()
		return fmt.Errorf("%w: %s", framework.ErrUnknownWorker, id)
	case w.info.Live() || !w.dispatched:
		m.mu.Unlock()
		return fmt.Errorf("%w: %s has not ended", framework.ErrWorkerExists, id)
	}
	m.mu.Unlock()
	if !m.awaitMark(id) {
		return errEnded
	}
	if err := m.deps.Store.DeleteWorkerAsMaster(ctx, m.fence, m.job.ID, id); err != nil {
		m.checkWrite(err)
		return sdkError(err)
	}
	m.mu.Lock()
	if m.workers[id] == w {
		// m.epochs keeps the id's last epoch: a re-creation by this master
		// still gets a higher one than any incarnation it ran.
		delete(m.workers, id)
	}
	m.mu.Unlock()
	return nil
}
