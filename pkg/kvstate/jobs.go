package kvstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

// maxCASRetries bounds an optimistic update loop under contention.
const maxCASRetries = 32

// MaxJobRecordBytes bounds a new job record as stored (JSON): a request
// under api.MaxPayload whose encoding does not grow fits, with room for
// the fields the job manager adds.
const MaxJobRecordBytes = 640 << 10

// encodeJob is the stored encoding of a job record (api.Encode: a record
// is about as large as the request it came from).
func encodeJob(j *api.Job) ([]byte, error) {
	b, err := api.Encode(j)
	if err != nil {
		return nil, fmt.Errorf("kvstate: encode job %s: %w", j.ID, err)
	}
	return b, nil
}

// CreateJob stores a new job record; a job with the same id yields
// ErrExists, a record whose encoding exceeds MaxJobRecordBytes ErrTooLarge.
func (s *Store) CreateJob(ctx context.Context, job *api.Job) (_ uint64, err error) {
	defer s.observe("create_job", time.Now(), &err)
	ctx, cancel := withDefault(ctx)
	defer cancel()
	b, err := encodeJob(job)
	if err != nil {
		return 0, err
	}
	if len(b) > MaxJobRecordBytes {
		return 0, fmt.Errorf("%w: job %s would be stored as %d bytes, at most %d", ErrTooLarge, job.ID, len(b), MaxJobRecordBytes)
	}
	rev, err := retryBusy(ctx, func() (uint64, error) { return s.jobs.Create(ctx, job.ID, b) })
	if isWrongLastSeq(err) {
		return 0, fmt.Errorf("%w: job %s", ErrExists, job.ID)
	}
	if err != nil {
		return 0, fmt.Errorf("kvstate: create job %s: %w", job.ID, err)
	}
	return rev, nil
}

// GetJob reads one job record and its revision.
func (s *Store) GetJob(ctx context.Context, id string) (_ *api.Job, _ uint64, err error) {
	defer s.observe("get_job", time.Now(), &err)
	e, err := s.get(ctx, s.jobs, id)
	if err != nil {
		return nil, 0, err
	}
	j, err := decode[api.Job](e)
	if err != nil {
		return nil, 0, err
	}
	return &j, e.Revision(), nil
}

// GetJobs reads the job records of ids at once (one batched read on a
// single server). A job without a record is absent from the map.
func (s *Store) GetJobs(ctx context.Context, ids []string) (_ map[string]*api.Job, err error) {
	defer s.observe("get_jobs", time.Now(), &err)
	for _, id := range ids {
		if err := topics.ValidateID("job", id); err != nil {
			return nil, err
		}
	}
	es, err := s.getMany(ctx, s.jobs, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*api.Job, len(es))
	for id, e := range es {
		j, err := decode[api.Job](e)
		if err != nil {
			return nil, err
		}
		out[id] = &j
	}
	return out, nil
}

// ErrNoChange may be returned by an update function to leave the record as it is.
var ErrNoChange = errors.New("kvstate: no change")

// UpdateJob applies fn to the latest job record and writes it with CAS,
// retrying on conflict. If fn returns ErrNoChange the record is returned
// unchanged; any other error aborts.
func (s *Store) UpdateJob(ctx context.Context, id string, fn func(*api.Job) error) (_ *api.Job, _ uint64, err error) {
	// An error of fn's own is the caller's decision, not a store outcome.
	start, fnErr := time.Now(), false
	defer func() {
		storeErr := err
		if fnErr {
			storeErr = nil
		}
		s.observe("update_job", start, &storeErr)
	}()
	ctx, cancel := withDefault(ctx)
	defer cancel()
	for range maxCASRetries {
		j, rev, err := s.GetJob(ctx, id)
		if err != nil {
			return nil, 0, err
		}
		if err := fn(j); errors.Is(err, ErrNoChange) {
			return j, rev, nil
		} else if err != nil {
			fnErr = true
			return j, rev, err
		}
		b, err := encodeJob(j)
		if err != nil {
			return nil, 0, err
		}
		nrev, err := retryBusy(ctx, func() (uint64, error) { return s.jobs.Update(ctx, id, b, rev) })
		if isWrongLastSeq(err) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("kvstate: update job %s: %w", id, err)
		}
		return j, nrev, nil
	}
	return nil, 0, fmt.Errorf("%w: job %s", ErrConflict, id)
}

// UpdateJobFrom is UpdateJob starting from a record the caller already holds
// at rev (from a watch): when nobody wrote it since, the update costs one
// CAS write and no read. fn gets a copy of cur and must only assign its
// fields. On a conflict it falls back to UpdateJob, so fn then sees the
// latest record; a decision fn takes from a stale cur without writing
// (ErrNoChange, or an error) is the caller's to revisit when its watch
// delivers the newer record.
func (s *Store) UpdateJobFrom(ctx context.Context, cur *api.Job, rev uint64, fn func(*api.Job) error) (*api.Job, uint64, error) {
	if rev == 0 {
		return s.UpdateJob(ctx, cur.ID, fn)
	}
	ctx, cancel := withDefault(ctx)
	defer cancel()
	j := *cur
	if err := fn(&j); errors.Is(err, ErrNoChange) {
		return cur, rev, nil
	} else if err != nil {
		return &j, rev, err
	}
	b, err := encodeJob(&j)
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	nrev, err := retryBusy(ctx, func() (uint64, error) { return s.jobs.Update(ctx, j.ID, b, rev) })
	if isWrongLastSeq(err) {
		return s.UpdateJob(ctx, cur.ID, fn)
	}
	if err != nil {
		err = fmt.Errorf("kvstate: update job %s: %w", j.ID, err)
	}
	s.observe("update_job", start, &err)
	if err != nil {
		return nil, 0, err
	}
	return &j, nrev, nil
}

// ScanJobs reads the jobs bucket in the order its records were last
// written (the sequence of the bucket's stream), starting after sequence
// after: a page costs one read per record, whatever the bucket holds. It
// reads at most max records (delete markers and unreadable records
// count) and calls fn with each job and its sequence; fn returns false to
// stop before that job. last is the sequence of the last record read and
// not refused by fn (after if none): the next scan starts after it. end
// is true when the bucket has no record past last.
func (s *Store) ScanJobs(ctx context.Context, after uint64, max int, fn func(j *api.Job, seq uint64) bool) (last uint64, end bool, err error) {
	defer s.observe("scan_jobs", time.Now(), &err)
	ctx, cancel := withDefault(ctx)
	defer cancel()
	stream, filter := "KV_"+s.jobs.Bucket(), "$KV."+s.jobs.Bucket()+".>"
	last = after
	for range max {
		if last == math.MaxUint64 {
			return last, true, nil
		}
		m, err := s.msgGet(ctx, stream, msgGetRequest{Seq: last + 1, NextFor: filter})
		if errors.Is(err, ErrNotFound) {
			return last, true, nil
		}
		if err != nil {
			return last, false, fmt.Errorf("kvstate: scan jobs after %d: %w", last, err)
		}
		if !m.deleted() {
			var j api.Job
			if json.Unmarshal(m.Data, &j) == nil && !fn(&j, m.Seq) {
				return last, false, nil
			}
		}
		last = m.Seq
	}
	return last, false, nil
}

// DeleteJob removes every record of a job: its master, worker and
// business records, its events, and last its job record, so a delete cut
// short leaves the job to be deleted again. Each is a purge of the
// stream by subject, which leaves no delete marker behind and costs one
// request whatever the job holds. Deleting a missing job is not an error.
func (s *Store) DeleteJob(ctx context.Context, id string) (err error) {
	defer s.observe("delete_job", time.Now(), &err)
	ctx, cancel := withDefault(ctx)
	defer cancel()
	events, err := s.space.JobEvents(id)
	if err != nil {
		return err
	}
	purges := []struct{ stream, subject string }{
		{"KV_" + s.state.Bucket(), s.statePrefix + masterKey(id)},
		{"KV_" + s.state.Bucket(), s.statePrefix + "w." + id + ".>"},
		{"KV_" + s.state.Bucket(), s.statePrefix + businessPattern(id)},
		{s.space.EventsStream(), events},
		{"KV_" + s.jobs.Bucket(), "$KV." + s.jobs.Bucket() + "." + id},
	}
	for _, p := range purges {
		st, err := s.js.Stream(ctx, p.stream)
		if err != nil {
			return fmt.Errorf("kvstate: delete job %s: %w", id, err)
		}
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(p.subject)); err != nil {
			return fmt.Errorf("kvstate: delete job %s: purge %s: %w", id, p.subject, err)
		}
	}
	return nil
}
