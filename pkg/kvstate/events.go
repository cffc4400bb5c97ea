package kvstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/api"
)

// EventsQuery selects a slice of one job's events from the events stream.
type EventsQuery struct {
	Job string
	// SinceSeq is the first stream sequence to return; 0 is the beginning.
	SinceSeq uint64
	// SinceTime, if set (and SinceSeq is 0), starts at the first event
	// stored at or after it.
	SinceTime time.Time
	// Limit bounds the events returned (at least 1).
	Limit int
	// MaxBytes bounds the encoded size of the events returned, so that a
	// reply carrying them stays under the payload limit. An event larger
	// than MaxBytes on its own is returned without its detail.
	MaxBytes int
}

// LastJobEvent returns the last event of job the events stream holds
// (ErrNotFound: none): one read of the last message on its subject.
func (s *Store) LastJobEvent(ctx context.Context, job string) (ev *api.Event, err error) {
	defer s.observe("last_job_event", time.Now(), &err)
	subj, err := s.space.JobEvents(job)
	if err != nil {
		return nil, err
	}
	m, err := s.msgGet(ctx, s.space.EventsStream(), msgGetRequest{LastFor: subj})
	if err != nil {
		return nil, err
	}
	ev = &api.Event{}
	if err := json.Unmarshal(m.Data, ev); err != nil {
		return nil, fmt.Errorf("kvstate: event %d of job %s: %w", m.Seq, job, err)
	}
	return ev, nil
}

// JobEvents reads the events of q.Job from the events stream, oldest first,
// and the sequence to continue from: every event of the job before next has
// been returned (or lies before the query's start), so a caller that asks
// again from next neither misses nor repeats one.
//
// It reads with a short-lived ephemeral consumer of its own, deleted before
// it returns, so clients never need the right to create consumers.
func (s *Store) JobEvents(ctx context.Context, q EventsQuery) (events []api.StreamEvent, next uint64, err error) {
	defer s.observe("job_events", time.Now(), &err)
	subj, err := s.space.JobEvents(q.Job)
	if err != nil {
		return nil, 0, err
	}
	if q.Limit < 1 {
		q.Limit = 1
	}
	ctx, cancel := withDefault(ctx)
	defer cancel()
	stream, err := s.js.Stream(ctx, s.space.EventsStream())
	if err != nil {
		return nil, 0, fmt.Errorf("kvstate: events stream: %w", err)
	}
	// Every event stored so far has a sequence up to last; one stored later
	// either comes with this read or has a sequence after next.
	last := stream.CachedInfo().State.LastSeq
	cfg := jetstream.ConsumerConfig{
		FilterSubject: subj, AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true,
		InactiveThreshold: 30 * time.Second, MaxRequestBatch: q.Limit, Replicas: 1,
	}
	switch {
	case q.SinceSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, q.SinceSeq
	case !q.SinceTime.IsZero():
		t := q.SinceTime
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	cons, err := stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("kvstate: events consumer: %w", err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultTimeout)
		defer dcancel()
		_ = stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	pending := cons.CachedInfo().NumPending
	events = make([]api.StreamEvent, 0, min(uint64(q.Limit), pending))
	full := false
	var seen uint64
	if pending > 0 {
		wait := DefaultTimeout
		if dl, ok := ctx.Deadline(); ok {
			wait = max(time.Until(dl)-50*time.Millisecond, 100*time.Millisecond)
		}
		batch, err := cons.Fetch(int(min(uint64(q.Limit), pending)), jetstream.FetchMaxWait(wait))
		if err != nil {
			return nil, 0, fmt.Errorf("kvstate: fetch events: %w", err)
		}
		size := 0
		for m := range batch.Messages() {
			seen++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			if full {
				continue // drain the batch; next stays at the first left out
			}
			var ev api.StreamEvent
			if json.Unmarshal(m.Data(), &ev.Event) != nil {
				// Not an event (someone else published here): skip it,
				// but move past it.
				next = md.Sequence.Stream + 1
				continue
			}
			ev.Seq = md.Sequence.Stream
			n := len(m.Data()) + 32
			if n > q.MaxBytes && q.MaxBytes > 0 {
				ev.Detail, ev.Truncated = nil, true
				b, _ := json.Marshal(ev)
				n = len(b)
			}
			if q.MaxBytes > 0 && size+n > q.MaxBytes {
				full = true
				continue
			}
			size += n
			events = append(events, ev)
			next = ev.Seq + 1
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, 0, fmt.Errorf("kvstate: fetch events: %w", err)
		}
	}
	if !full && seen >= pending {
		// Nothing more of the job's events up to last.
		next = max(next, last+1)
	}
	return events, max(next, q.SinceSeq, 1), nil
}
