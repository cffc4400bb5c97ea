package kvstate

import (
	"context"
	"time"

	"github.com/drover-run/drover/pkg/topics"
)

// DeleteWorkerAsMaster deletes a worker record on behalf of the master,
// fenced by the master's epoch like PutWorkerAsMaster: a stale master
// cannot remove what its successor leads. The caller makes sure the
// incarnation has ended. Listings skip the delete marker it leaves.
func (s *Store) DeleteWorkerAsMaster(ctx context.Context, master *Fence, job, worker string) (err error) {
	defer s.observe("delete_worker_as_master", time.Now(), &err)
	if err := topics.ValidateID("worker", worker); err != nil {
		return err
	}
	_, err = s.fencedPublish(ctx, master, workerKey(job, worker), nil, true)
	return err
}
