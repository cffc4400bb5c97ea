package kvstate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drover-run/drover/pkg/topics"
)

// ErrInvalidKey is returned for a business key that is not dot-separated ID tokens.
var ErrInvalidKey = errors.New("kvstate: invalid business key")

// Business is one job's business KV, seen by one writer (its master or one
// of its workers): reads are plain, every write is fenced by the writer's
// record, so a stale incarnation's write fails with ErrStaleEpoch. Keys of
// one job never reach another job's.
type Business struct {
	s     *Store
	job   string
	fence *Fence
	// onStale is called once a write found the writer stale.
	onStale func(error)
}

// Business returns the business KV of job as written under fence.
func (s *Store) Business(job string, fence *Fence, onStale func(error)) *Business {
	return &Business{s: s, job: job, fence: fence, onStale: onStale}
}

func validateKey(key string) error {
	if key == "" || len(key) > 256 {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	for _, tok := range strings.Split(key, ".") {
		if topics.ValidateID("key", tok) != nil {
			return fmt.Errorf("%w: %q", ErrInvalidKey, key)
		}
	}
	return nil
}

// Get returns the value of key and its revision; ErrNotFound if absent.
func (b *Business) Get(ctx context.Context, key string) (_ []byte, _ uint64, err error) {
	defer b.s.observe("business_get", time.Now(), &err)
	if err := validateKey(key); err != nil {
		return nil, 0, err
	}
	e, err := b.s.get(ctx, b.s.state, businessKey(b.job, key))
	if err != nil {
		return nil, 0, err
	}
	return e.Value(), e.Revision(), nil
}

// Put writes key under the writer's fence.
func (b *Business) Put(ctx context.Context, key string, val []byte) (_ uint64, err error) {
	defer b.s.observe("business_put", time.Now(), &err)
	if err := validateKey(key); err != nil {
		return 0, err
	}
	rev, err := b.s.fencedPublish(ctx, b.fence, businessKey(b.job, key), val, false)
	b.checkStale(err)
	return rev, err
}

// Delete removes key under the writer's fence.
func (b *Business) Delete(ctx context.Context, key string) (err error) {
	defer b.s.observe("business_delete", time.Now(), &err)
	if err := validateKey(key); err != nil {
		return err
	}
	_, err = b.s.fencedPublish(ctx, b.fence, businessKey(b.job, key), nil, true)
	b.checkStale(err)
	return err
}

// Keys lists the job's keys under prefix ("" for all).
func (b *Business) Keys(ctx context.Context, prefix string) (_ []string, err error) {
	defer b.s.observe("business_keys", time.Now(), &err)
	ctx, cancel := withDefault(ctx)
	defer cancel()
	lister, err := b.s.state.ListKeysFiltered(ctx, businessPattern(b.job))
	if err != nil {
		return nil, fmt.Errorf("kvstate: list keys of %s: %w", b.job, err)
	}
	strip := "b." + b.job + "."
	var out []string
	for k := range lister.Keys() {
		k = strings.TrimPrefix(k, strip)
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out, nil
}

func (b *Business) checkStale(err error) {
	if err != nil && errors.Is(err, ErrStaleEpoch) && b.onStale != nil {
		b.onStale(err)
	}
}
