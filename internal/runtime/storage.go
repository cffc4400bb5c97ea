package runtime

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/objstore"
)

// Bucket storage as the runtime serves it: a job's masters and workers read inputs from, and write
// intermediate data and outputs to, JetStream Object Store buckets.
//
// Named buckets (Storage.Bucket) belong to the deployment: a user loads
// inputs with `drover put` and reads outputs with `drover get-object`.
// The job's scratch space (Storage.Scratch) is a view of the deployment's
// work bucket under jobs/<job>/; the master's runtime deletes it when the
// job ends for good (finished, canceled, or failed with a permanent error)
// unless the master called KeepScratch(true). A master that fails with a
// retryable error keeps it, so the next attempt finds what the last one
// committed.

// DefaultWorkBucket is the bucket that holds every job's scratch space.
const DefaultWorkBucket = "work"

// StorageConfig is what a node gives its masters and workers. The zero
// value disables bucket storage.
type StorageConfig struct {
	Enabled bool
	// WorkBucket holds the jobs' scratch spaces; "" means DefaultWorkBucket.
	WorkBucket string
	// Replicas of the buckets created on demand (1, or 3 in a cluster).
	Replicas int
}

// ScratchPrefix is where a job's scratch objects live in the work bucket.
func ScratchPrefix(job string) string { return "jobs/" + job + "/" }

// ScratchKey is the business-KV key the SDK writes (fenced) before a job
// first uses its scratch space, so the cleanup of a job that never did
// costs one read instead of a listing of the work bucket.
const ScratchKey = "drover-scratch"

// storage is the Storage of one master or worker incarnation.
type storage struct {
	cfg  StorageConfig
	job  string
	c    *objstore.Client
	kv   framework.KV
	st   ScratchState
	keep atomic.Bool

	mu     sync.Mutex
	marked bool
}

// newStorage returns nil when bucket storage is disabled.
func newStorage(cfg StorageConfig, st ScratchState, job string, kv framework.KV) *storage {
	if !cfg.Enabled || st == nil {
		return nil
	}
	if cfg.WorkBucket == "" {
		cfg.WorkBucket = DefaultWorkBucket
	}
	return &storage{cfg: cfg, job: job, kv: kv, st: st,
		c: objstore.New(st.JetStream(), st.Space(), objstore.Options{Replicas: cfg.Replicas})}
}

// handle returns what a handle's Storage() reports.
func (s *storage) handle() (framework.Storage, bool) {
	if s == nil {
		return nil, false
	}
	return s, true
}

func (s *storage) Bucket(ctx context.Context, name string) (framework.Bucket, error) {
	b, err := s.c.OpenBucket(ctx, name)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (s *storage) CreateBucket(ctx context.Context, name string) (framework.Bucket, error) {
	b, err := s.c.Bucket(ctx, name)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (s *storage) Scratch(ctx context.Context) (framework.Bucket, error) {
	if err := s.mark(ctx); err != nil {
		return nil, err
	}
	b, err := s.c.Bucket(ctx, s.cfg.WorkBucket)
	if err != nil {
		return nil, err
	}
	return b.Sub(ScratchPrefix(s.job)), nil
}

func (s *storage) KeepScratch(keep bool) { s.keep.Store(keep) }

// mark records, once per incarnation, that the job uses its scratch space.
func (s *storage) mark(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.marked {
		return nil
	}
	mark := []byte("1")
	if s.keep.Load() {
		mark = []byte(scratchKept)
	}
	if _, err := s.kv.Put(ctx, ScratchKey, mark); err != nil {
		return err
	}
	s.marked = true
	return nil
}

// cleanScratch deletes the job's scratch space once the job has ended for
// good. It runs after the master's final record was written, so a fenced
// (stale) master never gets here, and a terminal job is never restarted:
// nobody can need the data any more. A master that failed with a
// retryable error leaves it for the next attempt; when there is none
// (restarts exhausted), or the job ends without its master (forced
// cancel, cancel while pending, delete), the job manager cleans it with
// CleanScratch.
func (m *MasterRuntime) cleanScratch(reason framework.ExitReason, retryable bool) {
	s := m.stor
	if s == nil || s.keep.Load() || (reason == framework.ExitFailed && retryable) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := CleanScratch(ctx, s.st, s.cfg.WorkBucket, m.job.ID, true)
	if err != nil {
		m.log.Warn("scratch cleanup", zap.Int("deleted", n), zap.Error(err))
		return
	}
	if n > 0 {
		m.log.Info("scratch deleted", zap.Int("objects", n))
	}
}

// scratchKept is the value of ScratchKey of a job that asked to keep its
// scratch space (KeepScratch(true) before it first used it).
const scratchKept = "keep"

// CleanScratch deletes the scratch space of job in workBucket and returns
// how many objects it deleted. A job that never used its scratch space
// costs one read; one that asked to keep it is left alone unless force.
// It may be repeated: what is gone stays gone.
func CleanScratch(ctx context.Context, st ScratchState, workBucket, job string, force bool) (int, error) {
	if workBucket == "" {
		workBucket = DefaultWorkBucket
	}
	v, _, err := st.Business(job, nil, nil).Get(ctx, ScratchKey)
	if errors.Is(err, kvstate.ErrNotFound) {
		return 0, nil // the job never used its scratch space
	}
	if err != nil {
		return 0, err
	}
	if string(v) == scratchKept && !force {
		return 0, nil
	}
	b, err := objstore.New(st.JetStream(), st.Space(), objstore.Options{}).OpenBucket(ctx, workBucket)
	if errors.Is(err, objstore.ErrBucketNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return b.Sub(ScratchPrefix(job)).DeletePrefix(ctx, "")
}

func (h *masterHandle) Storage() (framework.Storage, bool) { return h.m.stor.handle() }

func (h *workerHandle) Storage() (framework.Storage, bool) { return h.w.stor.handle() }
