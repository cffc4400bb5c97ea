package jobmanager

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// updateJob applies fn with CAS and publishes an event when the job's
// state, epoch or node changed.
func (s *Service) updateJob(ctx context.Context, id string, fn func(*api.Job) error) (*api.Job, error) {
	j, _, err := s.updateJobFrom(ctx, &api.Job{ID: id}, 0, fn)
	return j, err
}

// updateJobFrom is updateJob from a record held at rev (0: read it first);
// it returns the record and its new revision.
func (s *Service) updateJobFrom(ctx context.Context, cur *api.Job, rev uint64, fn func(*api.Job) error) (*api.Job, uint64, error) {
	return s.updateJobWhy(ctx, cur, rev, "", false, fn)
}

// updateJobWhy is updateJobFrom for a change whose reason the job record
// cannot tell: why a master moved, the reason of a master_moved event.
// State changes explain themselves (transitionReason). createdStored says
// the caller has made sure of the job's created event already
// (ensureCreatedEvent), so a move out of created does not check again.
func (s *Service) updateJobWhy(ctx context.Context, cur *api.Job, rev uint64, why string, createdStored bool,
	fn func(*api.Job) error) (*api.Job, uint64, error) {
	var before api.Job
	j, nrev, err := s.jobs.UpdateJobFrom(ctx, cur, rev, func(j *api.Job) error {
		before = *j
		if err := fn(j); err != nil {
			return err
		}
		j.UpdatedAt = time.Now().UTC()
		return nil
	})
	if err != nil {
		return j, nrev, err
	}
	switch {
	case before.State != j.State:
		if asSubmitted(&before) && !createdStored {
			s.ensureCreatedEvent(ctx, &before, true)
		}
		reason := transitionReason(&before, j)
		s.publishEvent(j, api.EventState, reason)
		if j.State.Terminal() {
			s.cleanEndedScratch(j, reason)
		}
	case before.Epoch != j.Epoch && j.Epoch > 0:
		s.publishEvent(j, api.EventMasterMoved, why)
	}
	return j, nrev, nil
}

// Reasons of state events (docs/operations.md). A master_moved event's
// reason is the leader's: timeout (its node went silent), disconnect (its
// node's connection closed) or handover (its node shut down).
const (
	ReasonSubmitted       = "submitted"        // → created
	ReasonAssigned        = "assigned"         // created or pending (no capacity before) → running
	ReasonRestart         = "restart"          // pending after a failure, its backoff over → running
	ReasonNoCapacity      = "no_capacity"      // no job-master node can take the job → pending
	ReasonMasterFailed    = "master_failed"    // → pending (restart after backoff) or failed (error says why)
	ReasonMasterFinished  = "master_finished"  // → finished
	ReasonCancelRequested = "cancel_requested" // → canceling, or → canceled when no master ran
	ReasonMasterCanceled  = "master_canceled"  // canceling → canceled by the master
	ReasonForced          = "forced"           // canceling → canceled by the leader (cancel_timeout, dead master)
)

// transitionReason names why a job went from before to after; every state
// transition the job manager makes is told apart by the records alone.
func transitionReason(before, after *api.Job) string {
	switch after.State {
	case api.StateCreated:
		return ReasonSubmitted
	case api.StateRunning:
		if before.State == api.StatePending && before.NextAttemptAt != nil {
			return ReasonRestart
		}
		return ReasonAssigned
	case api.StatePending:
		if after.NextAttemptAt != nil {
			return ReasonMasterFailed
		}
		return ReasonNoCapacity
	case api.StateCanceling:
		return ReasonCancelRequested
	case api.StateCanceled:
		switch {
		case before.State != api.StateRunning && before.State != api.StateCanceling:
			return ReasonCancelRequested
		case after.Epoch != before.Epoch:
			return ReasonForced
		}
		return ReasonMasterCanceled
	case api.StateFinished:
		return ReasonMasterFinished
	case api.StateFailed:
		return ReasonMasterFailed
	}
	return ""
}

func (s *Service) publishEvent(j *api.Job, kind, reason string) {
	if msg := eventMsg(s.space, j, kind, reason, time.Now().UTC()); msg != nil {
		if d := terminalEventDelay.Load(); d > 0 && j.State.Terminal() {
			time.Sleep(time.Duration(d))
			_ = s.deps.NC.PublishMsg(msg)
			_ = s.deps.NC.Flush() // the server has it: a later write to the stream is stored after it
			heldTerminalEvents.Add(1)
			return
		}
		_ = s.deps.NC.PublishMsg(msg)
	}
}

// terminalEventDelay, set by tests only, holds back a terminal state event
// after its record is written; heldTerminalEvents counts those sent since.
var (
	terminalEventDelay atomic.Int64
	heldTerminalEvents atomic.Int64
)

func eventMsg(space topics.Space, j *api.Job, kind, reason string, at time.Time) *nats.Msg {
	subj, err := space.JobEvents(j.ID)
	if err != nil {
		return nil
	}
	ev := api.Event{Job: j.ID, Kind: kind, State: j.State, Epoch: j.Epoch, Node: j.Node, Reason: reason,
		Error: j.Error, Time: at}
	if j.State.Terminal() {
		ev.Detail = j.Detail
	}
	return &nats.Msg{Subject: subj, Data: wire.Marshal(ev), Header: nats.Header{}}
}

// asSubmitted reports whether j is the record as submit stored it: in
// created, or stored pending at once because no node could take it
// (submit), which no update has touched since (an update sets UpdatedAt).
// Whoever moves such a job on first makes sure of its created event.
func asSubmitted(j *api.Job) bool {
	return j.State == api.StateCreated || (j.State == api.StatePending && j.UpdatedAt.Equal(j.CreatedAt))
}

// A job's created event is published by the replica that stored the job,
// after the store answered; the leader (or another replica cancelling it)
// can change the record before that publish, and their events must not
// come first in the job's history. Every created event carries one message
// id, so the events stream keeps the first and drops the others within its
// duplicate window (kvstate.EventsDuplicateWindow); whoever moves a job
// on from the record as submitted (asSubmitted) publishes it again, waiting
// for the stream's answer, before its own event.

// submitEvents are the events of j, a record as submitted (asSubmitted),
// as its submitter publishes them, in order: created and, for a job stored
// pending, its pending event; nil for an ID no subject can carry. Each
// carries a message id, so the events stream keeps the first copy and drops
// the others within its duplicate window.
func submitEvents(space topics.Space, j *api.Job) []*nats.Msg {
	created := *j
	created.State, created.Epoch, created.Node, created.Error = api.StateCreated, 0, "", nil
	type ev struct {
		j      *api.Job
		reason string
	}
	evs := []ev{{&created, ReasonSubmitted}}
	if j.State == api.StatePending {
		evs = append(evs, ev{j, ReasonNoCapacity})
	}
	out := make([]*nats.Msg, 0, len(evs))
	for _, e := range evs {
		m := eventMsg(space, e.j, api.EventState, e.reason, j.CreatedAt)
		if m == nil {
			return nil
		}
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s.%s.%d", e.j.State, j.ID, j.CreatedAt.UnixNano()))
		out = append(out, m)
	}
	return out
}

// ensureCreatedEvent makes sure the events of j, a record as submitted
// (asSubmitted), are in the events stream before an event of its next
// state, which this replica's connection publishes if ownNext (else the
// job's master does): those the submitter has not stored yet are published
// now (the submitter's, later, are dropped by the stream, though live
// subscribers see both), as are those that never came (the submitter died
// after storing the job). Past the duplicate window the submitter's events
// are long stored: nothing to do.
func (s *Service) ensureCreatedEvent(ctx context.Context, j *api.Job, ownNext bool) {
	if time.Since(j.CreatedAt) >= kvstate.EventsDuplicateWindow {
		return
	}
	if s.created.precedes(ctx, j.ID, j.CreatedAt, s.reconnects(), ownNext) {
		return // this replica published them (created.go)
	}
	msgs := submitEvents(s.space, j)
	if last, err := s.jobs.LastJobEvent(ctx, j.ID); err == nil {
		if len(msgs) == 1 || last.State != api.StateCreated {
			return // the submitter's are stored (live subscribers see them once)
		}
		msgs = msgs[1:] // the submitter's pending event is on its way, or lost
	}
	js, err := jetstream.New(s.deps.NC)
	for _, msg := range msgs {
		if err == nil {
			_, err = js.PublishMsg(ctx, msg)
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeDuplicateInProcess {
			err = nil // the submitter's, with the same message id, is being stored
		}
	}
	if err != nil {
		s.log.Warn("created event not confirmed", jobFields(j, zap.Error(err))...)
	}
}

// reconnects is how many times the replica's connection reconnected.
func (s *Service) reconnects() uint64 { return s.deps.NC.Stats().Reconnects }

// errCodeDuplicateInProcess is JetStream's answer to a publish whose
// message id another publish, not yet stored, carries (a replicated stream
// answers it while the first is being agreed on).
const errCodeDuplicateInProcess jetstream.ErrorCode = 10158

// sendCancel asks the job's master to cancel (OnCancel).
func (s *Service) sendCancel(j *api.Job) {
	subj, err := s.space.MasterInbox(j.ID)
	if err != nil {
		return
	}
	_ = s.deps.NC.PublishMsg(wire.NewMsg(subj, wire.KindCancel, j.Epoch, nil))
}
