package kvstate

import (
	"context"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/api"
)

// Op is what a watch event reports.
type Op uint8

const (
	// OpPut: the record was written; the event carries it.
	OpPut Op = iota + 1
	// OpDelete: the record was deleted, purged or expired.
	OpDelete
	// OpSynced: every record that existed when the watch started has
	// been delivered; what follows are changes.
	OpSynced
)

// JobEvent is a change of a job record. Job is set for OpPut, unless the
// record could not be decoded (Err).
type JobEvent struct {
	Op       Op
	ID       string
	Job      *api.Job
	Revision uint64
	Err      error
}

// MasterEvent is a change of a master record, Job naming the job.
type MasterEvent struct {
	Op       Op
	Job      string
	Master   *MasterRecord
	Revision uint64
	Err      error
}

// NodeEvent is a change of a node's presence; an expiry is an OpDelete.
type NodeEvent struct {
	Op       Op
	Kind, ID string
	Node     *api.Node
	Revision uint64
	Err      error
}

// Watch delivers typed events of one watch until Stop or its context
// ends, when Events is closed.
type Watch[E any] struct {
	w      jetstream.KeyWatcher
	events chan E
	stop   chan struct{}
	once   sync.Once
}

// Events returns the events, in the order of the records' revisions.
func (w *Watch[E]) Events() <-chan E { return w.events }

// Stop ends the watch.
func (w *Watch[E]) Stop() error {
	var err error
	w.once.Do(func() {
		close(w.stop)
		err = w.w.Stop()
	})
	return err
}

// newWatch turns w's entries into events; conv gets nil for the end of
// the initial values.
func newWatch[E any](ctx context.Context, w jetstream.KeyWatcher, conv func(jetstream.KeyValueEntry) E) *Watch[E] {
	tw := &Watch[E]{w: w, events: make(chan E, 64), stop: make(chan struct{})}
	go func() {
		defer close(tw.events)
		for {
			var e jetstream.KeyValueEntry
			var ok bool
			select {
			case e, ok = <-w.Updates():
				if !ok {
					return
				}
			case <-tw.stop:
				return
			case <-ctx.Done():
				return
			}
			select {
			case tw.events <- conv(e):
			case <-tw.stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return tw
}

// typed decodes an entry (nil: the end of the initial values) into its
// Op, revision and record (for OpPut, unless it cannot be decoded).
func typed[T any](e jetstream.KeyValueEntry) (op Op, rev uint64, rec *T, err error) {
	switch {
	case e == nil:
		return OpSynced, 0, nil, nil
	case e.Operation() != jetstream.KeyValuePut:
		return OpDelete, e.Revision(), nil, nil
	}
	v, err := decode[T](e)
	if err != nil {
		return OpPut, e.Revision(), nil, err
	}
	return OpPut, e.Revision(), &v, nil
}

// key is an entry's key, "" for the end of the initial values.
func key(e jetstream.KeyValueEntry) string {
	if e == nil {
		return ""
	}
	return e.Key()
}

// WatchJobs streams every job record change, starting with the current ones.
func (s *Store) WatchJobs(ctx context.Context) (*Watch[JobEvent], error) {
	w, err := s.jobs.WatchAll(ctx)
	if err != nil {
		return nil, err
	}
	return newWatch(ctx, w, func(e jetstream.KeyValueEntry) JobEvent {
		ev := JobEvent{ID: key(e)}
		ev.Op, ev.Revision, ev.Job, ev.Err = typed[api.Job](e)
		return ev
	}), nil
}

// WatchMasters streams master record changes, starting with the current ones.
func (s *Store) WatchMasters(ctx context.Context) (*Watch[MasterEvent], error) {
	w, err := s.state.Watch(ctx, "m.*")
	if err != nil {
		return nil, err
	}
	return newWatch(ctx, w, func(e jetstream.KeyValueEntry) MasterEvent {
		ev := MasterEvent{Job: strings.TrimPrefix(key(e), "m.")}
		ev.Op, ev.Revision, ev.Master, ev.Err = typed[MasterRecord](e)
		return ev
	}), nil
}

// WatchNodes streams presence changes of kind, starting with the live nodes.
func (s *Store) WatchNodes(ctx context.Context, kind string) (*Watch[NodeEvent], error) {
	w, err := s.nodes.Watch(ctx, kind+".*")
	if err != nil {
		return nil, err
	}
	return newWatch(ctx, w, func(e jetstream.KeyValueEntry) NodeEvent {
		var ev NodeEvent
		ev.Kind, ev.ID, _ = strings.Cut(key(e), ".")
		ev.Op, ev.Revision, ev.Node, ev.Err = typed[api.Node](e)
		return ev
	}), nil
}
