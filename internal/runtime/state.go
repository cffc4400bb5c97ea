package runtime

import (
	"context"

	"github.com/drover-run/drover/pkg/kvstate"
)

// The state the runtime uses, by role (pkg/kvstate): a node passes its
// store, and each incarnation can reach only what its role writes.

// ScratchState is what every incarnation and CleanScratch use: the job's
// business records and the object buckets.
type ScratchState interface {
	kvstate.BusinessKV
	kvstate.Conn
}

// MasterState is what a master uses: its master record, its workers'
// records and the job's business records.
type MasterState interface {
	ScratchState
	kvstate.Masters
	kvstate.Workers
}

// WorkerState is what a worker uses: its own worker record, under its
// fence, and the job's business records.
type WorkerState interface {
	ScratchState
	WorkerFence(job, worker string, rev uint64) *kvstate.Fence
	PutWorkerAsWorker(ctx context.Context, f *kvstate.Fence, rec *kvstate.WorkerRecord) error
}
