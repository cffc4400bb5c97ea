package runtime

import (
	"context"
	"errors"

	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
)

// jobKV is the framework.KV of one incarnation: kvstate's business KV,
// whose errors also match the SDK's sentinels, so job code tests
// framework.ErrNotFound and framework.ErrFenced without importing kvstate.
//
// Once its incarnation has ended, the KV refuses writes without trying
// them: only abandoned job code (a callback past its bound) still calls.
type jobKV struct {
	b *kvstate.Business
	c *core
}

func newJobKV(b *kvstate.Business, c *core) jobKV { return jobKV{b: b, c: c} }

// errEnded is what abandoned job code gets from its handles.
var errEnded = &bothError{err: errors.New("runtime: the incarnation has ended"), sdk: framework.ErrFenced}

func (k jobKV) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	v, rev, err := k.b.Get(ctx, key)
	return v, rev, sdkError(err)
}

func (k jobKV) Put(ctx context.Context, key string, val []byte) (uint64, error) {
	if k.c.isEnded() {
		return 0, errEnded
	}
	rev, err := k.b.Put(ctx, key, val)
	return rev, sdkError(err)
}

func (k jobKV) Delete(ctx context.Context, key string) error {
	if k.c.isEnded() {
		return errEnded
	}
	return sdkError(k.b.Delete(ctx, key))
}

func (k jobKV) Keys(ctx context.Context, prefix string) ([]string, error) {
	keys, err := k.b.Keys(ctx, prefix)
	return keys, sdkError(err)
}

func (k jobKV) GetPrefix(ctx context.Context, prefix string) ([]framework.KVEntry, error) {
	es, err := k.b.GetPrefix(ctx, prefix)
	return es, sdkError(err)
}

func (k jobKV) CompareAndPut(ctx context.Context, key string, val []byte, rev uint64) (uint64, error) {
	if k.c.isEnded() {
		return 0, errEnded
	}
	rev, err := k.b.CompareAndPut(ctx, key, val, rev)
	return rev, sdkError(err)
}

func (k jobKV) Batch(ctx context.Context, ops []framework.KVOp) (uint64, error) {
	if k.c.isEnded() {
		return 0, errEnded
	}
	rev, err := k.b.Batch(ctx, ops)
	return rev, sdkError(err)
}

// sdkError makes err also match the SDK sentinel of its kind; its text is
// unchanged and it still matches the kvstate sentinel.
func sdkError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kvstate.ErrNotFound):
		return &bothError{err: err, sdk: framework.ErrNotFound}
	case errors.Is(err, kvstate.ErrStaleEpoch):
		return &bothError{err: err, sdk: framework.ErrFenced}
	case errors.Is(err, kvstate.ErrRevisionMismatch):
		return &bothError{err: err, sdk: framework.ErrRevisionMismatch}
	}
	return err
}

type bothError struct{ err, sdk error }

func (e *bothError) Error() string   { return e.err.Error() }
func (e *bothError) Unwrap() []error { return []error{e.err, e.sdk} }
