// Package kvstate owns Drover's durable state in JetStream: the buckets and
// streams, the job, master, worker, node and business records, and the epoch
// fencing of docs/failover.md (Epochs and fences). Every write that a stale process could make goes
// through a CAS or a fenced publish here, so a zombie's write fails with
// ErrStaleEpoch instead of taking effect.
package kvstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/topics"
)

// Sentinel errors, tested with errors.Is.
var (
	ErrStaleEpoch = errors.New("kvstate: stale epoch")
	ErrNotFound   = errors.New("kvstate: not found")
	ErrExists     = errors.New("kvstate: already exists")
	ErrConflict   = errors.New("kvstate: too many concurrent updates")
	ErrNotLeader  = errors.New("kvstate: lease lost")
	// ErrTooLarge: the record would exceed its bound (see MaxJobRecordBytes).
	ErrTooLarge = errors.New("kvstate: record too large")
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 5 * time.Second

// Options configure Open.
type Options struct {
	// Replicas of every bucket and stream: 1 on one server, 3 in a cluster.
	Replicas int
	// NodeTTL is how long a node's presence outlives its last heartbeat.
	NodeTTL time.Duration
	// LeaseTTL is how long the leader lease outlives its last renewal.
	LeaseTTL time.Duration
	// EventsMaxAge bounds how long job events are kept.
	EventsMaxAge time.Duration
	// Bounds of the buckets and streams (0: the default beside each).
	// At the bound the jobs and state buckets and the requests stream
	// refuse writes (ErrFull); the events stream drops its oldest events,
	// the oldest of the same job first (EventsMaxPerJob).
	JobsMaxBytes     int64 // 1 GiB
	StateMaxBytes    int64 // 2 GiB
	EventsMaxBytes   int64 // 256 MiB
	EventsMaxPerJob  int64 // 100,000
	RequestsMaxMsgs  int64 // 100,000
	RequestsMaxBytes int64 // 128 MiB
	// Observer, if set, is told the latency and outcome of every store
	// operation (the services turn it into metrics).
	Observer Observer
	// OpenOnly opens the buckets and streams without creating or updating
	// them: the nodes, whose identities may not (docs/security.md), wait
	// for a job manager to have created them.
	OpenOnly bool
}

// Observer is told how long a store operation took and how it ended. op is
// one of a fixed set of names (get_job, put_master, business_put, ...).
// err is nil on success; ErrNotFound, ErrExists, ErrStaleEpoch and
// ErrNotLeader are outcomes, not failures: see IsFailure.
type Observer func(op string, took time.Duration, err error)

// IsFailure reports whether err is a store failure (timeout, lost
// connection, server error) rather than an expected outcome such as a
// missing key or a fenced write.
func IsFailure(err error) bool {
	return err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrExists) &&
		!errors.Is(err, ErrStaleEpoch) && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrTooLarge)
}

func (o *Options) defaults() {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.NodeTTL <= 0 {
		o.NodeTTL = 5 * time.Second
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 5 * time.Second
	}
	if o.EventsMaxAge <= 0 {
		o.EventsMaxAge = 7 * 24 * time.Hour
	}
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.JobsMaxBytes, 1<<30)
	def(&o.StateMaxBytes, 2<<30)
	def(&o.EventsMaxBytes, 256<<20)
	def(&o.EventsMaxPerJob, 100000)
	def(&o.RequestsMaxMsgs, 100000)
	def(&o.RequestsMaxBytes, 128<<20)
}

// Store is the handle on every bucket and stream of one deployment.
type Store struct {
	js     jetstream.JetStream
	space  topics.Space
	jobs   jetstream.KeyValue
	state  jetstream.KeyValue
	nodes  jetstream.KeyValue
	leader jetstream.KeyValue
	// statePrefix is the subject prefix of state bucket keys ($KV.<bucket>.).
	statePrefix string
	// replicas of the buckets: above 1, reads go through the stream leader.
	replicas int
	observer Observer
	leaseTTL time.Duration
	batch    *batchGets
}

// Open creates (idempotently) and opens every bucket and stream.
func Open(ctx context.Context, js jetstream.JetStream, space topics.Space, opts Options) (*Store, error) {
	opts.defaults()
	ctx, cancel := withDefault(ctx)
	defer cancel()
	s := &Store{js: js, space: space, statePrefix: "$KV." + space.StateBucket() + ".", observer: opts.Observer,
		replicas: opts.Replicas, leaseTTL: opts.LeaseTTL, batch: &batchGets{nc: js.Conn()}}
	if opts.OpenOnly {
		return s, s.open(ctx)
	}
	var err error
	if s.jobs, err = ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: space.JobsBucket(), Description: "Drover job records", History: 1,
		Replicas: opts.Replicas, Storage: jetstream.FileStorage, MaxBytes: opts.JobsMaxBytes,
	}); err != nil {
		return nil, err
	}
	if s.state, err = ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: space.StateBucket(), Description: "Drover master, worker and business records", History: 1,
		Replicas: opts.Replicas, Storage: jetstream.FileStorage, MaxBytes: opts.StateMaxBytes,
	}); err != nil {
		return nil, err
	}
	if err := enableAtomic(ctx, js, space.StateBucket()); err != nil {
		return nil, err
	}
	if s.nodes, err = ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: space.NodesBucket(), Description: "Drover node presence", History: 1,
		TTL: opts.NodeTTL, Replicas: opts.Replicas, Storage: jetstream.MemoryStorage,
	}); err != nil {
		return nil, err
	}
	if s.leader, err = ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: space.LeaderBucket(), Description: "Drover job manager leader lease", History: 1,
		TTL: opts.LeaseTTL, Replicas: opts.Replicas, Storage: jetstream.FileStorage,
	}); err != nil {
		return nil, err
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: space.RequestsStream(), Description: "Drover durable job submissions",
		Subjects: []string{space.JobRequests()}, Retention: jetstream.WorkQueuePolicy,
		Replicas: opts.Replicas, Storage: jetstream.FileStorage, MaxMsgSize: 1 << 20,
		Duplicates: 2 * time.Minute, MaxMsgs: opts.RequestsMaxMsgs, MaxBytes: opts.RequestsMaxBytes,
		Discard: jetstream.DiscardNew,
	}); err != nil {
		return nil, fmt.Errorf("kvstate: create requests stream: %w", err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, EventsStreamConfig(space.EventsStream(),
		[]string{space.JobEventsPattern(), space.RequestRejections()}, opts)); err != nil {
		return nil, fmt.Errorf("kvstate: create events stream: %w", err)
	}
	return s, nil
}

// EventsStreamConfig is the events stream's configuration, as Open creates
// it, under name for subjects, with opts's limits (their defaults where
// unset).
func EventsStreamConfig(name string, subjects []string, opts Options) jetstream.StreamConfig {
	opts.defaults()
	return jetstream.StreamConfig{
		Name: name, Description: "Drover job events", Subjects: subjects, MaxAge: opts.EventsMaxAge,
		MaxBytes: opts.EventsMaxBytes, MaxMsgsPerSubject: opts.EventsMaxPerJob, Discard: jetstream.DiscardOld,
		Replicas: opts.Replicas, Storage: jetstream.FileStorage, Duplicates: EventsDuplicateWindow,
	}
}

// EventsDuplicateWindow is how long the events stream drops an event whose
// message id it already stored (a job's created event, published by its
// submitter and again by whoever first moves the job on).
const EventsDuplicateWindow = 2 * time.Minute

// open binds the buckets and checks the streams exist.
func (s *Store) open(ctx context.Context) error {
	for _, b := range []struct {
		kv   *jetstream.KeyValue
		name string
	}{{&s.jobs, s.space.JobsBucket()}, {&s.state, s.space.StateBucket()}, {&s.nodes, s.space.NodesBucket()}, {&s.leader, s.space.LeaderBucket()}} {
		kv, err := s.js.KeyValue(ctx, b.name)
		if err != nil {
			return fmt.Errorf("kvstate: open bucket %s: %w", b.name, err)
		}
		*b.kv = kv
	}
	for _, name := range []string{s.space.RequestsStream(), s.space.EventsStream()} {
		if _, err := s.js.Stream(ctx, name); err != nil {
			return fmt.Errorf("kvstate: open stream %s: %w", name, err)
		}
	}
	return nil
}

func ensureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("kvstate: create bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// JetStream returns the JetStream context the store uses.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Space returns the deployment namespace.
func (s *Store) Space() topics.Space { return s.space }

// Ping checks that the state bucket answers (used by /readyz).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	_, err := s.state.Status(ctx)
	return err
}

// observe reports an operation that started at start and ended with *errp;
// use it as defer s.observe("op", time.Now(), &err).
func (s *Store) observe(op string, start time.Time, errp *error) {
	if s.observer != nil {
		s.observer(op, time.Since(start), *errp)
	}
}

func withDefault(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// jsStoreFailed is JetStream's error code for a write a stream refused at
// its bounds (maximum bytes or messages exceeded, with DiscardNew).
const jsStoreFailed = 10077

// IsFull reports whether err is a write refused because a bucket or
// stream is at its bound (Options); nothing was written.
func IsFull(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsStoreFailed
}

func isWrongLastSeq(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func decode[T any](e jetstream.KeyValueEntry) (T, error) {
	var v T
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, fmt.Errorf("kvstate: decode %s: %w", e.Key(), err)
	}
	return v, nil
}

// getEntry reads a key, mapping absence to ErrNotFound.
func getEntry(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("kvstate: get %s: %w", key, err)
	}
	return e, nil
}

// readAll returns the latest entry of every key matching filter. On a
// single server that is one batched direct get (the last message of every
// matching subject, as one request and its stream of answers, a snapshot
// taken under the stream's lock); a replicated bucket, or more keys than
// one batch answers, is read through an ordered consumer instead: a direct
// get may be answered by a replica that lags (see get), and the consumer
// costs the server a consumer create and delete, which matter when a
// node's masters all recover at once.
func (s *Store) readAll(ctx context.Context, kv jetstream.KeyValue, filter string) ([]jetstream.KeyValueEntry, error) {
	if s.replicas <= 1 {
		if out, ok := s.lastOfEach(ctx, kv.Bucket(), filter); ok {
			return out, nil
		}
	}
	return watchAll(ctx, kv, filter)
}

// lastOfEach reads the last entry of each key matching the filters in
// one batched direct get; ok is false when the batch could not answer for
// every key (too many keys for one batch, a reply cut at the server's byte
// bound, a server without batched gets) and the caller must read another
// way.
func (s *Store) lastOfEach(ctx context.Context, bucket string, filters ...string) (_ []jetstream.KeyValueEntry, ok bool) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	prefix := "$KV." + bucket + "."
	subjects := make([]string, len(filters))
	for i, f := range filters {
		subjects[i] = prefix + f
	}
	msgs, err := s.batch.lastOfEach(ctx, "KV_"+bucket, subjects)
	if err != nil {
		return nil, false
	}
	out := make([]jetstream.KeyValueEntry, 0, len(msgs))
	for _, m := range msgs {
		if kvDeleted(m.Header) {
			continue
		}
		subj := m.Header.Get(jetstream.SubjectHeader)
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil || !strings.HasPrefix(subj, prefix) {
			return nil, false
		}
		at, err := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
		if err != nil {
			return nil, false
		}
		out = append(out, &entry{bucket: bucket, key: subj[len(prefix):], value: m.Data,
			rev: seq, created: at, op: jetstream.KeyValuePut})
	}
	return out, true
}

// getMany reads the latest entry of each of keys (ids the caller
// validated): on a single server in one batched direct get, otherwise (a
// replicated bucket, whose direct gets a lagging replica may answer, or
// more keys than one batch) one read each. A key with no entry is absent
// from the map; any other failure fails the call.
func (s *Store) getMany(ctx context.Context, kv jetstream.KeyValue, keys []string) (map[string]jetstream.KeyValueEntry, error) {
	out := make(map[string]jetstream.KeyValueEntry, len(keys))
	if s.replicas <= 1 && len(keys) <= maxBatchKeys {
		if es, ok := s.lastOfEach(ctx, kv.Bucket(), keys...); ok {
			for _, e := range es {
				out[e.Key()] = e
			}
			return out, nil
		}
	}
	for _, k := range keys {
		e, err := s.get(ctx, kv, k)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, err
		default:
			out[k] = e
		}
	}
	return out, nil
}

// watchAll reads the latest entry of every key matching filter through an
// ordered consumer.
func watchAll(ctx context.Context, kv jetstream.KeyValue, filter string) ([]jetstream.KeyValueEntry, error) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("kvstate: watch %s: %w", filter, err)
	}
	defer func() { _ = w.Stop() }()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return out, nil
			}
			if e == nil {
				return out, nil
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, fmt.Errorf("kvstate: read %s: %w", filter, ctx.Err())
		}
	}
}
