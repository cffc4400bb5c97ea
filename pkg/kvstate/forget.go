package kvstate

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/topics"
)

// DeleteWorkerAsMaster deletes a worker record on behalf of the master,
// fenced by the master's epoch like PutWorkerAsMaster: a stale master
// cannot remove what its successor leads. The caller makes sure the
// incarnation has ended.
//
// The fenced delete leaves a marker; it is then purged up to its own
// sequence, never beyond, so a record written after it (the same id
// created again) is untouched, and a job that keeps creating and removing
// workers keeps nothing of them. A purge that fails leaves the marker,
// which listings skip and DeleteJob removes.
func (s *Store) DeleteWorkerAsMaster(ctx context.Context, master *Fence, job, worker string) (err error) {
	defer s.observe("delete_worker_as_master", time.Now(), &err)
	if err := topics.ValidateID("worker", worker); err != nil {
		return err
	}
	seq, err := s.fencedPublish(ctx, master, workerKey(job, worker), nil, true)
	if err != nil {
		return err
	}
	ctx, cancel := withDefault(ctx)
	defer cancel()
	if st, err := s.js.Stream(ctx, "KV_"+s.state.Bucket()); err == nil {
		_ = st.Purge(ctx, jetstream.WithPurgeSubject(s.statePrefix+workerKey(job, worker)), jetstream.WithPurgeSequence(seq+1))
	}
	return nil
}
