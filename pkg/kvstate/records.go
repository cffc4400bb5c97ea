package kvstate

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

// MasterState is the state of one master incarnation as recorded in KV.
type MasterState string

// Master states. Assigned is written by the leader with a new epoch; the
// master moves it to Running; the rest are exits.
const (
	MasterAssigned MasterState = "assigned"
	MasterRunning  MasterState = "running"
	MasterFinished MasterState = "finished"
	MasterFailed   MasterState = "failed"
	MasterCanceled MasterState = "canceled"
	// MasterStopped is written by the leader when it fences a master by force.
	MasterStopped MasterState = "stopped"
)

// Exited reports whether the master incarnation has ended.
func (s MasterState) Exited() bool {
	return s == MasterFinished || s == MasterFailed || s == MasterCanceled || s == MasterStopped
}

// MasterRecord is a job's master: where it runs, under which epoch, how far it got.
type MasterRecord struct {
	Job         string          `json:"job"`
	Node        string          `json:"node"`
	Epoch       uint64          `json:"epoch"`
	State       MasterState     `json:"state"`
	Initialized bool            `json:"initialized"`
	Error       *api.Error      `json:"error,omitempty"`
	Retryable   bool            `json:"retryable,omitempty"`
	Detail      json.RawMessage `json:"detail,omitempty"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// WorkerState is the state of one worker incarnation.
type WorkerState string

// Worker states: created by the master, online after the first heartbeat,
// then one of the ended states.
const (
	WorkerCreated WorkerState = "created"
	WorkerOnline  WorkerState = "online"
	// WorkerWaiting: no node can take the worker yet (or it waits out a
	// re-creation backoff); its master retries the placement.
	WorkerWaiting  WorkerState = "waiting"
	WorkerFinished WorkerState = "finished"
	WorkerFailed   WorkerState = "failed"
	WorkerCanceled WorkerState = "canceled"
	// WorkerLost is written by the master when it declared the worker dead
	// or its node left; the write fences the old incarnation.
	WorkerLost WorkerState = "lost"
)

// Ended reports whether the worker incarnation has ended.
func (s WorkerState) Ended() bool {
	return s == WorkerFinished || s == WorkerFailed || s == WorkerCanceled || s == WorkerLost
}

// WorkerRecord is one worker of a job: its incarnation (epoch), node and status.
type WorkerRecord struct {
	Job    string          `json:"job"`
	ID     string          `json:"id"`
	Type   string          `json:"type"`
	Config json.RawMessage `json:"config,omitempty"`
	Node   string          `json:"node"`
	Epoch  uint64          `json:"epoch"`
	State  WorkerState     `json:"state"`
	Reason string          `json:"reason,omitempty"`
	Status json.RawMessage `json:"status,omitempty"`
	Error  *api.Error      `json:"error,omitempty"`
	Detail json.RawMessage `json:"detail,omitempty"`
	// Selectors are the node selectors of a waiting worker (its own, or
	// the job's it inherited), so a master that recovers it places it as
	// the job asked.
	Selectors map[string]string `json:"selectors,omitzero"`
	// PriorFailures counts the earlier incarnations of this worker id that
	// ended failed by their own code (Exit failed, a panic, a hang). The
	// master carries it from one incarnation to the next, so it survives
	// master failover.
	PriorFailures int `json:"prior_failures,omitempty"`
	// Reported: the master delivered this ended incarnation to the job
	// (OnWorkerOffline or a failed OnWorkerDispatched); a recovering
	// master does not deliver it again.
	Reported  bool      `json:"reported,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

func masterKey(job string) string            { return "m." + job }
func workerKey(job, worker string) string    { return "w." + job + "." + worker }
func businessKey(job, key string) string     { return "b." + job + "." + key }
func workersPattern(job string) string       { return "w." + job + ".*" }
func businessPattern(job string) string      { return "b." + job + ".>" }
func workerIDFromKey(job, key string) string { return strings.TrimPrefix(key, "w."+job+".") }

// GetMaster reads a job's master record and its revision.
func (s *Store) GetMaster(ctx context.Context, job string) (_ *MasterRecord, _ uint64, err error) {
	defer s.observe("get_master", time.Now(), &err)
	if err := topics.ValidateID("job", job); err != nil {
		return nil, 0, err
	}
	e, err := s.get(ctx, s.state, masterKey(job))
	if err != nil {
		return nil, 0, err
	}
	m, err := decode[MasterRecord](e)
	return &m, e.Revision(), err
}

// MasterAt is a master record and its revision.
type MasterAt struct {
	Record *MasterRecord
	Rev    uint64
}

// GetMasters reads the master records of jobs at once (one batched read
// on a single server): a job-master node checks a batch of assignments
// with it. A job without a record is absent from the map.
func (s *Store) GetMasters(ctx context.Context, jobs []string) (_ map[string]MasterAt, err error) {
	defer s.observe("get_masters", time.Now(), &err)
	keys := make([]string, len(jobs))
	for i, job := range jobs {
		if err := topics.ValidateID("job", job); err != nil {
			return nil, err
		}
		keys[i] = masterKey(job)
	}
	es, err := s.getMany(ctx, s.state, keys)
	if err != nil {
		return nil, err
	}
	out := make(map[string]MasterAt, len(es))
	for _, job := range jobs {
		if e, ok := es[masterKey(job)]; ok {
			m, err := decode[MasterRecord](e)
			if err != nil {
				return nil, err
			}
			out[job] = MasterAt{Record: &m, Rev: e.Revision()}
		}
	}
	return out, nil
}

// AdvanceEpoch gives a job's master a new epoch with a CAS on its record and
// lets fn set the rest (node, state). It returns the new record and a fence
// holding its revision: the token the new incarnation writes with. Every
// holder of an older fence is stale from this write on.
func (s *Store) AdvanceEpoch(ctx context.Context, job string, fn func(*MasterRecord)) (*MasterRecord, *Fence, error) {
	return s.advanceEpoch(ctx, job, nil, 0, false, fn)
}

// AdvanceEpochFrom is AdvanceEpoch starting from the master record the
// caller holds at rev (from a watch; nil and 0 when it knows of none):
// when nobody wrote the record since, the epoch bump costs one write and
// no read. The write is the same CAS, so a stale guess only costs a retry
// from a fresh read.
func (s *Store) AdvanceEpochFrom(ctx context.Context, job string, cur *MasterRecord, rev uint64, fn func(*MasterRecord)) (*MasterRecord, *Fence, error) {
	return s.advanceEpoch(ctx, job, cur, rev, true, fn)
}

func (s *Store) advanceEpoch(ctx context.Context, job string, cur *MasterRecord, curRev uint64, guess bool,
	fn func(*MasterRecord)) (_ *MasterRecord, _ *Fence, err error) {
	defer s.observe("advance_epoch", time.Now(), &err)
	ctx, cancel := withDefault(ctx)
	defer cancel()
	key := masterKey(job)
	for range maxCASRetries {
		var rec *MasterRecord
		var rev uint64
		var err error
		switch {
		case guess && cur != nil && curRev > 0:
			c := *cur
			rec, rev = &c, curRev
		case guess:
			rec = &MasterRecord{Job: job}
		default:
			rec, rev, err = s.GetMaster(ctx, job)
		}
		guess = false
		switch {
		case err == nil:
		case errorsIsNotFound(err):
			rec, rev = &MasterRecord{Job: job}, 0
		default:
			return nil, nil, err
		}
		rec.Epoch++
		rec.Error = nil
		rec.Retryable = false
		rec.UpdatedAt = time.Now().UTC()
		fn(rec)
		b, _ := json.Marshal(rec)
		var nrev uint64
		if rev == 0 {
			nrev, err = retryBusy(ctx, func() (uint64, error) { return s.state.Create(ctx, key, b) })
		} else {
			nrev, err = retryBusy(ctx, func() (uint64, error) { return s.state.Update(ctx, key, b, rev) })
		}
		if isWrongLastSeq(err) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("kvstate: advance epoch of %s: %w", job, err)
		}
		return rec, s.newFence(key, nrev), nil
	}
	return nil, nil, fmt.Errorf("%w: master %s", ErrConflict, job)
}

// MasterFence returns the fence for a master incarnation given its record revision.
func (s *Store) MasterFence(job string, rev uint64) *Fence { return s.newFence(masterKey(job), rev) }

// PutMaster writes the master's own record under its fence.
func (s *Store) PutMaster(ctx context.Context, f *Fence, rec *MasterRecord) (err error) {
	defer s.observe("put_master", time.Now(), &err)
	rec.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("kvstate: encode master %s: %w", rec.Job, err)
	}
	_, err = s.updateOwn(ctx, f, b)
	return err
}

// PutWorkerAsMaster writes a worker record on behalf of the master (create,
// re-create with a new epoch, declare lost), fenced by the master's epoch.
// It returns the record's revision: the fence of that worker incarnation.
func (s *Store) PutWorkerAsMaster(ctx context.Context, master *Fence, rec *WorkerRecord) (_ uint64, err error) {
	defer s.observe("put_worker_as_master", time.Now(), &err)
	if err := topics.ValidateID("worker", rec.ID); err != nil {
		return 0, err
	}
	rec.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("kvstate: encode worker %s: %w", rec.ID, err)
	}
	return s.fencedPublish(ctx, master, workerKey(rec.Job, rec.ID), b, false)
}

// WorkerFence returns the fence of a worker incarnation given its record revision.
func (s *Store) WorkerFence(job, worker string, rev uint64) *Fence {
	return s.newFence(workerKey(job, worker), rev)
}

// PutWorkerAsWorker writes the worker's own record (status, exit) with CAS;
// it fails with ErrStaleEpoch once the master re-created or declared it lost.
func (s *Store) PutWorkerAsWorker(ctx context.Context, f *Fence, rec *WorkerRecord) (err error) {
	defer s.observe("put_worker", time.Now(), &err)
	rec.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("kvstate: encode worker %s: %w", rec.ID, err)
	}
	_, err = s.updateOwn(ctx, f, b)
	return err
}

// WorkerEntry is a worker record with its revision.
type WorkerEntry struct {
	Record   WorkerRecord
	Revision uint64
}

// ListWorkers returns every worker record of a job.
func (s *Store) ListWorkers(ctx context.Context, job string) (_ []WorkerEntry, err error) {
	defer s.observe("list_workers", time.Now(), &err)
	if err := topics.ValidateID("job", job); err != nil {
		return nil, err
	}
	entries, err := s.readAll(ctx, s.state, workersPattern(job))
	if err != nil {
		return nil, err
	}
	out := make([]WorkerEntry, 0, len(entries))
	for _, e := range entries {
		r, err := decode[WorkerRecord](e)
		if err != nil {
			return nil, err
		}
		if r.ID == "" {
			r.ID = workerIDFromKey(job, e.Key())
		}
		out = append(out, WorkerEntry{Record: r, Revision: e.Revision()})
	}
	return out, nil
}

// GetWorker reads one worker record and its revision.
func (s *Store) GetWorker(ctx context.Context, job, worker string) (_ *WorkerRecord, _ uint64, err error) {
	defer s.observe("get_worker", time.Now(), &err)
	e, err := s.get(ctx, s.state, workerKey(job, worker))
	if err != nil {
		return nil, 0, err
	}
	r, err := decode[WorkerRecord](e)
	return &r, e.Revision(), err
}
