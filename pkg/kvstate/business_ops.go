package kvstate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Compare-and-put and atomic batches of business keys. Both are JetStream
// atomic batches (the state stream allows them, see enableAtomic): every
// message of a batch is stored, or none. A fenced write carries one
// expected-sequence check, on the writer's own record; a compare-and-put
// needs a second one, on the key, so it is a batch of two writes of the
// same value: the first checks the key's revision, the second the fence.
// The bucket keeps one revision per key, so only the second remains.

// ErrRevisionMismatch: a compare-and-put found the key at another revision.
var ErrRevisionMismatch = errors.New("kvstate: key revision changed")

// MaxBatch is the most writes one Business.Batch takes.
const MaxBatch = 100

// BusinessEntry is one key of a prefix read.
type BusinessEntry struct {
	Key      string
	Value    []byte
	Revision uint64
}

// BusinessOp is one write of a batch: Value put at Key, or Key deleted.
type BusinessOp struct {
	Key    string
	Value  []byte
	Delete bool
}

// Batch headers of JetStream atomic publish.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// jsAtomicDisabled is the error code of a batch sent to a stream that does
// not allow them: briefly the case while a node re-applies the state
// bucket's configuration at start (Open), so it is retried.
const jsAtomicDisabled = 10174

// enableAtomic lets the state stream take atomic batches. The KV API does
// not carry the setting, so a bucket (re)configuration clears it and this
// sets it again.
func enableAtomic(ctx context.Context, js jetstream.JetStream, bucket string) error {
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return fmt.Errorf("kvstate: stream of %s: %w", bucket, err)
	}
	cfg := st.CachedInfo().Config
	if cfg.AllowAtomicPublish {
		return nil
	}
	cfg.AllowAtomicPublish = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("kvstate: allow atomic batches on %s: %w", bucket, err)
	}
	return nil
}

// CompareAndPut writes key only if its revision is still rev (0: the key
// has no value), under the writer's fence. It fails with
// ErrRevisionMismatch when the key moved, ErrStaleEpoch when the writer
// is stale; either way nothing was written.
func (b *Business) CompareAndPut(ctx context.Context, key string, val []byte, rev uint64) (_ uint64, err error) {
	defer b.s.observe("business_cas", time.Now(), &err)
	if err := validateKey(key); err != nil {
		return 0, err
	}
	ctx, cancel := withDefault(ctx)
	defer cancel()
	subj := b.s.statePrefix + businessKey(b.job, key)
	for attempt := 0; ; attempt++ {
		cas := nats.NewMsg(subj)
		cas.Data = val
		cas.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
		seq, err := b.s.publishBatch(ctx, b.fence, []*nats.Msg{cas, b.s.fencedMsg(b.fence, subj, val, false)})
		if !isWrongLastSeq(err) {
			return seq, err
		}
		if stale, ferr := b.s.fenceMoved(ctx, b.fence); ferr != nil {
			return 0, ferr
		} else if stale {
			err = fmt.Errorf("%w: write %s fenced by %s@%d", ErrStaleEpoch, key, b.fence.key, b.fence.Rev())
			b.checkStale(err)
			return 0, err
		}
		if rev == 0 && attempt == 0 {
			// A deleted key has no value, but its delete marker holds the
			// subject's last sequence: expect that one instead.
			if marker, ok := b.s.deleteMarker(ctx, subj); ok {
				rev = marker
				continue
			}
		}
		return 0, fmt.Errorf("%w: %s", ErrRevisionMismatch, key)
	}
}

// Batch applies ops atomically under the writer's fence: all of them or,
// on any error, none. It returns the revision of the last write.
func (b *Business) Batch(ctx context.Context, ops []BusinessOp) (_ uint64, err error) {
	defer b.s.observe("business_batch", time.Now(), &err)
	if len(ops) == 0 || len(ops) > MaxBatch {
		return 0, fmt.Errorf("%w: a batch holds 1..%d writes, got %d", ErrInvalidKey, MaxBatch, len(ops))
	}
	msgs := make([]*nats.Msg, len(ops))
	for i, op := range ops {
		if err := validateKey(op.Key); err != nil {
			return 0, err
		}
		subj := b.s.statePrefix + businessKey(b.job, op.Key)
		if i == 0 {
			// The batch is checked as a whole: one fence check covers it.
			msgs[i] = b.s.fencedMsg(b.fence, subj, op.Value, op.Delete)
		} else {
			msgs[i] = nats.NewMsg(subj)
			msgs[i].Data = op.Value
			if op.Delete {
				msgs[i].Header.Set(kvOperation, kvDelete)
			}
		}
	}
	ctx, cancel := withDefault(ctx)
	defer cancel()
	seq, err := b.s.publishBatch(ctx, b.fence, msgs)
	if isWrongLastSeq(err) {
		err = fmt.Errorf("%w: batch fenced by %s@%d", ErrStaleEpoch, b.fence.key, b.fence.Rev())
		b.checkStale(err)
	}
	return seq, err
}

// GetPrefix returns the job's keys under prefix ("" for all) with their
// values and revisions, sorted by key.
func (b *Business) GetPrefix(ctx context.Context, prefix string) (_ []BusinessEntry, err error) {
	defer b.s.observe("business_get_prefix", time.Now(), &err)
	filter := businessPattern(b.job)
	if p, ok := strings.CutSuffix(prefix, "."); ok && validateKey(p) == nil {
		filter = businessKey(b.job, p) + ".>" // whole tokens: the server filters
	}
	entries, err := b.s.readAll(ctx, b.s.state, filter)
	if err != nil {
		return nil, err
	}
	strip := "b." + b.job + "."
	var out []BusinessEntry
	for _, e := range entries {
		k := strings.TrimPrefix(e.Key(), strip)
		if strings.HasPrefix(k, prefix) {
			out = append(out, BusinessEntry{Key: k, Value: e.Value(), Revision: e.Revision()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// KV operation headers of a delete marker.
const (
	kvOperation = "KV-Operation"
	kvDelete    = "DEL"
)

// fencedMsg is a write of subj that lands only while f holds.
func (s *Store) fencedMsg(f *Fence, subj string, val []byte, del bool) *nats.Msg {
	m := nats.NewMsg(subj)
	m.Data = val
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(f.Rev(), 10))
	m.Header.Set("Nats-Expected-Last-Subject-Sequence-Subject", f.subject)
	if del {
		m.Header.Set(kvOperation, kvDelete)
	}
	return m
}

// publishBatch sends msgs as one atomic batch and returns the sequence of
// the last. A batch the server could not take yet (an expected-sequence
// check in flight on a replicated stream, or atomic batches being
// re-enabled) is sent again under a new id.
func (s *Store) publishBatch(ctx context.Context, f *Fence, msgs []*nats.Msg) (uint64, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	nc := s.js.Conn()
	for {
		id := strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
		for i, m := range msgs {
			m.Header.Set(hdrBatchID, id)
			m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
			m.Header.Del(hdrBatchCommit)
		}
		last := msgs[len(msgs)-1]
		last.Header.Set(hdrBatchCommit, "1")
		var err error
		for _, m := range msgs[:len(msgs)-1] {
			if err = nc.PublishMsg(m); err != nil {
				break
			}
		}
		var ack *jetstream.PubAck
		if err == nil {
			ack, err = s.js.PublishMsg(ctx, last)
		}
		if err == nil {
			return ack.Sequence, nil
		}
		var apiErr *jetstream.APIError
		if !isBusy(err) && !(errors.As(err, &apiErr) && apiErr.ErrorCode == jsAtomicDisabled) {
			if isWrongLastSeq(err) {
				return 0, err
			}
			return 0, fmt.Errorf("kvstate: batch write: %w", err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("kvstate: batch write: %w", err)
		case <-time.After(time.Millisecond + rand.N(2*time.Millisecond)):
		}
	}
}

// fenceMoved reports whether the fence's record moved past its revision.
func (s *Store) fenceMoved(ctx context.Context, f *Fence) (bool, error) {
	e, err := s.get(ctx, s.state, f.key)
	if errors.Is(err, ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return e.Revision() != f.Rev(), nil
}

// deleteMarker returns the sequence of subj's last message if that is a
// delete or purge marker.
func (s *Store) deleteMarker(ctx context.Context, subj string) (uint64, bool) {
	st, err := s.js.Stream(ctx, "KV_"+s.space.StateBucket())
	if err != nil {
		return 0, false
	}
	m, err := st.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		return 0, false
	}
	if op := m.Header.Get(kvOperation); op == kvDelete || op == "PURGE" {
		return m.Sequence, true
	}
	return 0, false
}
