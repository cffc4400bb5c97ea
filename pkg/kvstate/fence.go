package kvstate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Fence is a writer's claim: the subject of its own record (master or
// worker) and the revision of that record it last wrote or was given. A write
// fenced by it succeeds only while nobody else has written that record since,
// which is exactly "no newer epoch exists".
type Fence struct {
	key     string
	subject string
	rev     atomic.Uint64
	// mu lets fenced writes run in parallel but never across an update of
	// the fence's own record, which would make them fail spuriously.
	mu sync.RWMutex
}

func (s *Store) newFence(key string, rev uint64) *Fence {
	f := &Fence{key: key, subject: s.statePrefix + key}
	f.rev.Store(rev)
	return f
}

// Rev returns the record revision the fence holds.
func (f *Fence) Rev() uint64 { return f.rev.Load() }

// Key returns the key of the record the fence guards.
func (f *Fence) Key() string { return f.key }

// fencedPublish writes key in the state bucket only if the fence's record is
// still at the fence's revision (one atomic server-side check).
func (s *Store) fencedPublish(ctx context.Context, f *Fence, key string, val []byte, del bool) (uint64, error) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	if key == f.key {
		return 0, fmt.Errorf("kvstate: fenced write to the fence's own record %s", key)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := s.fencedMsg(f, s.statePrefix+key, val, del)
	ack, err := retryBusy(ctx, func() (*jetstream.PubAck, error) { return s.js.PublishMsg(ctx, m) })
	if isWrongLastSeq(err) {
		return 0, fmt.Errorf("%w: write %s fenced by %s@%d", ErrStaleEpoch, key, f.key, f.Rev())
	}
	if err != nil {
		return 0, fmt.Errorf("kvstate: fenced write %s: %w", key, err)
	}
	return ack.Sequence, nil
}

// updateOwn writes the fence's own record with CAS and advances the fence.
func (s *Store) updateOwn(ctx context.Context, f *Fence, val []byte) (uint64, error) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	f.mu.Lock()
	defer f.mu.Unlock()
	rev, err := retryBusy(ctx, func() (uint64, error) { return s.state.Update(ctx, f.key, val, f.Rev()) })
	if isWrongLastSeq(err) {
		return 0, fmt.Errorf("%w: record %s moved past %d", ErrStaleEpoch, f.key, f.Rev())
	}
	if err != nil {
		return 0, fmt.Errorf("kvstate: update %s: %w", f.key, err)
	}
	f.rev.Store(rev)
	return rev, nil
}

// retryBusy runs a conditional write, retrying while a replicated
// stream's leader answers that another expected-sequence check on the same
// subject is still in flight (10164). That answer says nothing about the
// condition; a real mismatch comes back as 10071.
func retryBusy[T any](ctx context.Context, write func() (T, error)) (T, error) {
	for {
		v, err := write()
		if !isBusy(err) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(time.Millisecond + rand.N(2*time.Millisecond)):
		}
	}
}

func isBusy(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
