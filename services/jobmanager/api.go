package jobmanager

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/placement"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// Bounds on what a request may ask for.
const (
	maxSelectors   = 32
	maxListLimit   = 1000
	defaultListLim = 100
	maxRestartsCap = 1000

	defaultEventsLimit = 100
	maxEventsLimit     = 1000
	// replyBytes bounds the jobs or events of one list reply, leaving
	// room for the envelope under api.MaxPayload (itself under the 1 MiB
	// NATS default max_payload).
	replyBytes = api.MaxPayload - 4<<10
)

// decodeStrict decodes one JSON object, refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	if len(body) > api.MaxPayload {
		return api.Errorf(api.CodeTooLarge, "request is %d bytes, at most %d", len(body), api.MaxPayload)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.Errorf(api.CodeInvalidArgument, "malformed request: %v", err)
	}
	if dec.More() {
		return api.Errorf(api.CodeInvalidArgument, "malformed request: trailing data after the JSON object")
	}
	return nil
}

func invalidID(kind, id string) error {
	if err := topics.ValidateID(kind, id); err != nil {
		return api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	return nil
}

// newJobID returns a time-ordered random id.
func newJobID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("j%x%x", time.Now().UTC().UnixMilli(), b)
}

// validateSpec checks a submission and normalizes it; it changes nothing.
func (s *Service) validateSpec(spec *api.Spec) error {
	if spec.ID == "" {
		spec.ID = newJobID()
	} else if err := invalidID("job", spec.ID); err != nil {
		return err
	}
	if spec.Type == "" {
		return api.Errorf(api.CodeInvalidArgument, "type is required")
	}
	if err := invalidID("type", spec.Type); err != nil {
		return err
	}
	if len(spec.Config) > 0 {
		trimmed := bytes.TrimSpace(spec.Config)
		if string(trimmed) == "null" {
			spec.Config = nil
		} else if len(trimmed) == 0 || trimmed[0] != '{' {
			return api.Errorf(api.CodeInvalidArgument, "config must be a JSON object")
		} else {
			var buf bytes.Buffer
			if err := json.Compact(&buf, trimmed); err != nil {
				return api.Errorf(api.CodeInvalidArgument, "config: %v", err)
			}
			spec.Config = buf.Bytes()
		}
	}
	if len(spec.Selectors) > maxSelectors {
		return api.Errorf(api.CodeInvalidArgument, "at most %d selectors", maxSelectors)
	}
	for k, v := range spec.Selectors {
		if k == "" || len(k) > 64 || len(v) > 256 || strings.ContainsAny(k, "=,") {
			return api.Errorf(api.CodeInvalidArgument, "selector %q=%q is not a valid label", k, v)
		}
	}
	if err := placement.ValidateSelectors(spec.Selectors); err != nil {
		return api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	if r := spec.Restart; r != nil {
		if r.MaxRestarts != nil && (*r.MaxRestarts < 0 || *r.MaxRestarts > maxRestartsCap) {
			return api.Errorf(api.CodeInvalidArgument, "restart.max_restarts must be 0..%d", maxRestartsCap)
		}
		if r.InitialBackoff < 0 || r.MaxBackoff < 0 || r.InitialBackoff > api.MaxBackoffMs || r.MaxBackoff > api.MaxBackoffMs {
			return api.Errorf(api.CodeInvalidArgument, "restart backoffs must be 0..%d ms (24 h)", api.MaxBackoffMs)
		}
	}
	known := false
	if jt, ok := s.deps.Types.Type(spec.Type); ok {
		known = true
		if jt.Validate != nil {
			if err := jt.Validate(spec.Config); err != nil {
				return api.Errorf(api.CodeInvalidArgument, "%v", err)
			}
		}
	} else {
		known = s.nodes.Serves(spec.Type)
	}
	if !known {
		return api.Errorf(api.CodeUnknownType, "job type %q is not registered", spec.Type)
	}
	return nil
}

func sameSpec(a, b api.Spec) bool {
	norm := func(s api.Spec) api.Spec {
		if len(s.Selectors) == 0 {
			s.Selectors = nil
		}
		if len(s.Config) == 0 {
			s.Config = nil
		}
		return s
	}
	a, b = norm(a), norm(b)
	return a.ID == b.ID && a.Type == b.Type && bytes.Equal(a.Config, b.Config) &&
		reflect.DeepEqual(a.Selectors, b.Selectors) && reflect.DeepEqual(a.Restart, b.Restart)
}

// submit validates and stores a job; the same id and spec again returns the
// stored job, the same id with another spec is already_exists.
func (s *Service) submit(ctx context.Context, body []byte) (*api.Job, error) {
	var spec api.Spec
	if err := decodeStrict(body, &spec); err != nil {
		return nil, err
	}
	if err := s.validateSpec(&spec); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	job := &api.Job{ID: spec.ID, Type: spec.Type, Config: spec.Config, Selectors: spec.Selectors,
		Restart: spec.Restart, State: api.StateCreated, CreatedAt: now, UpdatedAt: now}
	var reply string
	switch {
	case s.nodes.NoneCanTake(job.Type, job.Selectors):
		// The leader would mark it pending at once: it is stored so, one
		// write instead of two (docs/architecture.md, What a job writes).
		job.State = api.StatePending
	case s.leading.Load():
		// This replica's leader will move the job out of created (created.go).
		reply = s.created.track(job.ID, job.CreatedAt, s.reconnects())
	}
	_, err := s.jobs.CreateJob(ctx, job)
	if err != nil && reply != "" {
		s.created.published(job.ID, job.CreatedAt, err)
	}
	if errors.Is(err, kvstate.ErrExists) {
		old, _, gerr := s.jobs.GetJob(ctx, spec.ID)
		if gerr != nil {
			return nil, storeError(gerr)
		}
		if sameSpec(old.Spec(), spec) {
			return old, nil
		}
		return nil, api.Errorf(api.CodeAlreadyExists, "job %s exists with another spec", spec.ID)
	}
	if err != nil {
		return nil, storeError(err)
	}
	perr := errNoCreatedEvent
	for i, msg := range submitEvents(s.space, job) {
		if i == 0 {
			msg.Reply = reply
		}
		if err := s.deps.NC.PublishMsg(msg); i == 0 {
			perr = err
		}
	}
	if reply != "" {
		s.created.published(job.ID, job.CreatedAt, perr)
	}
	s.log.Info("job submitted", jobFields(job, zap.String("job_type", job.Type), zap.String("state", string(job.State)))...)
	return job, nil
}

func (s *Service) get(ctx context.Context, body []byte) (*api.Job, error) {
	var req api.GetRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	return s.jobByID(ctx, req.ID)
}

// jobByID reads the job a request names: a coded invalid_argument for a
// malformed id, not_found for a job that is not there.
func (s *Service) jobByID(ctx context.Context, id string) (*api.Job, error) {
	if err := invalidID("job", id); err != nil {
		return nil, err
	}
	j, _, err := s.jobs.GetJob(ctx, id)
	if err != nil {
		return nil, storeError(err)
	}
	return j, nil
}

// pageLimit is a request's page size: def for 0, invalid_argument
// outside 0..max.
func pageLimit(limit, def, max int) (int, error) {
	if limit < 0 || limit > max {
		return 0, api.Errorf(api.CodeInvalidArgument, "limit must be 0..%d", max)
	}
	if limit == 0 {
		return def, nil
	}
	return limit, nil
}

// listReads bounds the records one list page reads: the page, plus as
// many records again (and a hundred) that the filters may skip. A page
// that runs out of reads ends early with next set.
func listReads(limit int) int { return 2*limit + 100 }

// list answers one page of jobs in the order their records last changed,
// reading O(limit) records (docs/architecture.md, State: the decision on `list`). Jobs
// come without detail unless asked, and the page is cut before its reply
// outgrows budget bytes.
func (s *Service) list(ctx context.Context, body []byte, budget int) ([]api.Job, string, error) {
	var req api.ListRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, "", err
	}
	if req.State != "" && !req.State.Valid() {
		return nil, "", api.Errorf(api.CodeInvalidArgument, "unknown state %q", req.State)
	}
	var after uint64
	if req.After != "" {
		n, err := strconv.ParseUint(req.After, 10, 64)
		if err != nil {
			return nil, "", api.Errorf(api.CodeInvalidArgument, "after %q is not the next of an earlier page", req.After)
		}
		after = n
	}
	if req.Type != "" {
		if err := invalidID("type", req.Type); err != nil {
			return nil, "", err
		}
	}
	var err error
	if req.Limit, err = pageLimit(req.Limit, defaultListLim, maxListLimit); err != nil {
		return nil, "", err
	}
	out := make([]api.Job, 0, min(req.Limit, 64))
	seen := map[string]int{}
	size := 0
	last, end, err := s.jobs.ScanJobs(ctx, after, listReads(req.Limit), func(j *api.Job, _ uint64) bool {
		if len(out) == req.Limit {
			return false
		}
		if (req.State != "" && j.State != req.State) || (req.Type != "" && j.Type != req.Type) {
			return true
		}
		if !req.Detail {
			j.Detail = nil
		}
		if i, ok := seen[j.ID]; ok {
			// It changed while this page was read: show its newer record
			// once, in place; one that grew past the budget starts the
			// next page.
			grown := len(wire.Marshal(j)) - len(wire.Marshal(&out[i]))
			if grown > 0 && size+grown > budget {
				return false
			}
			out[i] = *j
			size += max(grown, 0)
			return true
		}
		n := len(wire.Marshal(j)) + 1
		if size+n > budget {
			if len(out) > 0 {
				return false // the next page starts with it
			}
			// Alone it does not fit: list it without its config and
			// detail (get shows them).
			j.Config, j.Detail, j.Truncated = nil, nil, true
			n = len(wire.Marshal(j)) + 1
		}
		seen[j.ID] = len(out)
		out = append(out, *j)
		size += n
		return true
	})
	if err != nil {
		return nil, "", storeError(err)
	}
	next := ""
	if !end {
		next = strconv.FormatUint(last, 10)
	}
	return out, next, nil
}

// cancel moves a job towards canceled: at once if no master runs it,
// through the master's OnCancel otherwise (the leader bounds that).
func (s *Service) cancel(ctx context.Context, body []byte) (*api.Job, error) {
	var req api.CancelRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if err := invalidID("job", req.ID); err != nil {
		return nil, err
	}
	changed := false
	j, err := s.updateJob(ctx, req.ID, func(j *api.Job) error {
		now := time.Now().UTC()
		changed = true
		switch j.State {
		case api.StateCreated, api.StatePending:
			j.State = api.StateCanceled
			j.NextAttemptAt = nil
		case api.StateRunning:
			j.State = api.StateCanceling
			j.CancelRequestedAt = &now
		default:
			changed = false
			return kvstate.ErrNoChange
		}
		return nil
	})
	if err != nil {
		return nil, storeError(err)
	}
	if changed {
		s.log.Info("job cancel requested", jobFields(j, zap.String("job_state", string(j.State)))...)
	}
	if j.State == api.StateCanceling {
		s.sendCancel(j)
	}
	return j, nil
}

// workers answers one page of a job's workers in id order, reading
// O(limit) records (docs/operations.md, "Limits"): the job's worker ids
// come from the store's subject index, names only. The page is cut before
// its reply outgrows budget bytes.
func (s *Service) workers(ctx context.Context, body []byte, budget int) (api.WorkersReply, error) {
	var req api.WorkersRequest
	if err := decodeStrict(body, &req); err != nil {
		return api.WorkersReply{}, err
	}
	if err := invalidID("job", req.ID); err != nil {
		return api.WorkersReply{}, err
	}
	if req.State != "" && !workerStates[kvstate.WorkerState(req.State)] {
		return api.WorkersReply{}, api.Errorf(api.CodeInvalidArgument, "unknown worker state %q", req.State)
	}
	if req.After != "" && topics.ValidateID("worker", req.After) != nil {
		return api.WorkersReply{}, api.Errorf(api.CodeInvalidArgument, "after %q is not the next of an earlier page", req.After)
	}
	var err error
	if req.Limit, err = pageLimit(req.Limit, defaultListLim, maxListLimit); err != nil {
		return api.WorkersReply{}, err
	}
	if _, err := s.jobByID(ctx, req.ID); err != nil {
		return api.WorkersReply{}, err
	}
	ids, err := s.workerRecs.WorkerIDs(ctx, req.ID)
	if err != nil {
		return api.WorkersReply{}, storeError(err)
	}
	out := make([]api.Worker, 0, min(req.Limit, 64))
	size := 0
	last, end, err := s.workerRecs.PageWorkers(ctx, req.ID, ids, req.After, listReads(req.Limit), func(e kvstate.WorkerEntry) bool {
		if len(out) == req.Limit {
			return false
		}
		r := e.Record
		if req.State != "" && string(r.State) != req.State {
			return true
		}
		w := api.Worker{ID: r.ID, Type: r.Type, Node: r.Node, Epoch: r.Epoch, State: string(r.State),
			Reason: r.Reason, Status: r.Status, Error: r.Error, UpdatedAt: r.UpdatedAt}
		n := len(wire.Marshal(w)) + 1
		if size+n > budget {
			if len(out) > 0 {
				return false // the next page starts with it
			}
			// Alone it does not fit: list it without its status.
			w.Status, w.Truncated = nil, true
			n = len(wire.Marshal(w)) + 1
		}
		out = append(out, w)
		size += n
		return true
	})
	if err != nil {
		return api.WorkersReply{}, storeError(err)
	}
	rep := api.WorkersReply{Workers: out, Total: len(ids)}
	if !end {
		rep.Next = last
	}
	return rep, nil
}

// workerStates are the states a workers request may filter on.
var workerStates = map[kvstate.WorkerState]bool{
	kvstate.WorkerCreated: true, kvstate.WorkerOnline: true, kvstate.WorkerWaiting: true,
	kvstate.WorkerFinished: true, kvstate.WorkerFailed: true, kvstate.WorkerCanceled: true, kvstate.WorkerLost: true,
}

// events returns a page of a job's history from the events stream. The job
// need not exist any more: its events outlive it for the stream's max age.
func (s *Service) events(ctx context.Context, body []byte) ([]api.StreamEvent, uint64, error) {
	var req api.EventsRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, 0, err
	}
	if err := invalidID("job", req.ID); err != nil {
		return nil, 0, err
	}
	var err error
	if req.Limit, err = pageLimit(req.Limit, defaultEventsLimit, maxEventsLimit); err != nil {
		return nil, 0, err
	}
	if req.SinceSeq > 0 && req.SinceTime != nil {
		return nil, 0, api.Errorf(api.CodeInvalidArgument, "give since_seq or since_time, not both")
	}
	q := kvstate.EventsQuery{Job: req.ID, SinceSeq: req.SinceSeq, Limit: req.Limit, MaxBytes: replyBytes}
	if req.SinceTime != nil {
		q.SinceTime = *req.SinceTime
	}
	evs, next, err := s.jobs.JobEvents(ctx, q)
	if err != nil {
		return nil, 0, storeError(err)
	}
	return evs, next, nil
}

// jobFields are the fields of a log line about a job: job_id, epoch and
// node (the job-master node; the replica's own id is "replica").
func jobFields(j *api.Job, more ...zap.Field) []zap.Field {
	return append([]zap.Field{zap.String("job_id", j.ID), zap.Uint64("epoch", j.Epoch), zap.String("node", j.Node)}, more...)
}

// storeError maps store errors to API codes.
func storeError(err error) error {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, kvstate.ErrNotFound):
		return api.Errorf(api.CodeNotFound, "%v", err)
	case errors.Is(err, kvstate.ErrTooLarge), errors.Is(err, nats.ErrMaxPayload):
		return api.Errorf(api.CodeTooLarge, "the job is too large once encoded for storage (at most %d bytes)", kvstate.MaxJobRecordBytes)
	case kvstate.IsFull(err):
		return api.Errorf(api.CodeUnavailable, "the job store is full (DROVER_JOBS_MAX_BYTES, DROVER_STATE_MAX_BYTES); delete finished jobs or raise the limit")
	case errors.Is(err, topics.ErrInvalidID):
		return api.Errorf(api.CodeInvalidArgument, "%v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return api.Errorf(api.CodeUnavailable, "state store did not answer in time")
	}
	return api.Errorf(api.CodeInternal, "%v", err)
}
