package jobmanager

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/internal/svc"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
)

// Deps are the service's collaborators.
type Deps struct {
	NC       *nats.Conn
	Log      *zap.Logger
	Registry *prometheus.Registry
	// Types are the job types this replica can validate; types served by
	// live job-master nodes are accepted too.
	Types *framework.Registry
}

// Service is one job manager replica.
type Service struct {
	cfg     Config
	deps    Deps
	id      string
	log     *zap.Logger
	metrics *metrics
	store   *kvstate.Store
	nodes   *framework.Placer
	leading atomic.Bool
	// leaseUntil (Unix ns) is when the lease this replica holds may lapse,
	// less a margin; 0 when it holds none.
	leaseUntil atomic.Int64
	// sys is the system-account connection (nil without access) and
	// sysAccount the account whose disconnect events the leader follows.
	sys        *nats.Conn
	sysAccount string
	http       *obs.Server
}

// queueGroup makes every replica answer API requests, each request once.
const queueGroup = "drover-jobmanager"

// maxInflight bounds the API requests a replica handles at once.
const maxInflight = 256

// New builds a replica; Run starts it.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Registry == nil {
		deps.Registry = obs.NewRegistry()
	}
	if deps.Types == nil {
		deps.Types = framework.NewRegistry()
	}
	id := cfg.NodeIDOr("jobmanager")
	return &Service{
		cfg: cfg, deps: deps, id: id,
		log:     deps.Log.With(zap.String("replica", id)),
		metrics: newMetrics(deps.Registry),
		nodes:   framework.NewPlacer(api.NodeJobMaster, cfg.NodeTTL()),
	}, nil
}

// ID returns the replica id.
func (s *Service) ID() string { return s.id }

// Leading reports whether this replica holds the leader lease.
func (s *Service) Leading() bool { return s.leading.Load() }

// Run serves until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	st, err := svc.OpenStore(ctx, &s.cfg.Common, s.deps.NC, s.log, svc.KVObserver(s.deps.Registry))
	if err != nil {
		return err
	}
	s.store = st
	go s.nodes.Run(ctx, st, s.log)
	defer s.openSystem(ctx)()

	space := st.Space()
	handlers := map[string]func(context.Context, []byte) api.Reply{
		space.APISubmit():  s.replyJob(s.submit),
		space.APIGet():     s.replyJob(s.get),
		space.APICancel():  s.replyJob(s.cancel),
		space.APIList():    s.replyList,
		space.APINodes():   s.replyNodes,
		space.APIWorkers(): s.replyWorkers,
	}
	// Requests are handled concurrently, up to maxInflight: each waits on
	// a KV round trip, and one at a time would cap the API at one round
	// trip per request whatever the store allows.
	inflight := make(chan struct{}, maxInflight)
	var handling sync.WaitGroup
	var closeMu sync.Mutex
	closed := false
	defer func() {
		closeMu.Lock()
		closed = true
		closeMu.Unlock()
		handling.Wait()
	}()
	for subj, h := range handlers {
		sub, err := s.deps.NC.QueueSubscribe(subj, queueGroup, func(msg *nats.Msg) {
			inflight <- struct{}{}
			closeMu.Lock()
			if closed {
				closeMu.Unlock()
				<-inflight
				return
			}
			handling.Add(1)
			closeMu.Unlock()
			go func() {
				defer func() { <-inflight; handling.Done() }()
				// A request taken is answered even if the replica is shutting
				// down meanwhile (Run waits for it): canceling its store call
				// would answer internal "context canceled" to a client whose
				// job may well have been stored.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				rep := h(rctx, msg.Data)
				s.countReply(subj, rep.Error)
				_ = msg.Respond(wire.Marshal(rep))
			}()
		})
		if err != nil {
			return err
		}
		defer func() { _ = sub.Unsubscribe() }()
	}

	s.http = s.newHTTP()
	_, stopHTTP, err := s.http.Start(s.cfg.HTTPAddr, s.log)
	if err != nil {
		return err
	}
	defer stopHTTP()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.consumeRequests(ctx) }()
	go func() { defer wg.Done(); s.elect(ctx) }()
	s.log.Info("job manager started")
	wg.Wait()
	return nil
}

func (s *Service) replyJob(f func(context.Context, []byte) (*api.Job, error)) func(context.Context, []byte) api.Reply {
	return func(ctx context.Context, b []byte) api.Reply {
		j, err := f(ctx, b)
		if err != nil {
			return api.Reply{Error: api.AsError(err)}
		}
		return api.Reply{Job: j}
	}
}

func (s *Service) replyList(ctx context.Context, b []byte) api.Reply {
	jobs, next, err := s.list(ctx, b)
	if err != nil {
		return api.Reply{Error: api.AsError(err)}
	}
	if jobs == nil {
		jobs = []api.Job{}
	}
	return api.Reply{Jobs: jobs, Next: next}
}

func (s *Service) replyNodes(ctx context.Context, b []byte) api.Reply {
	if err := decodeStrict(b, &struct{}{}); err != nil {
		return api.Reply{Error: api.AsError(err)}
	}
	nodes, err := s.store.ListNodes(ctx, "")
	if err != nil {
		return api.Reply{Error: api.AsError(storeError(err))}
	}
	if nodes == nil {
		nodes = []api.Node{}
	}
	return api.Reply{Nodes: nodes}
}

func (s *Service) replyWorkers(ctx context.Context, b []byte) api.Reply {
	ws, err := s.workers(ctx, b)
	if err != nil {
		return api.Reply{Error: api.AsError(err)}
	}
	if ws == nil {
		ws = []api.Worker{}
	}
	return api.Reply{Workers: ws}
}

// consumeRequests takes submissions from the durable requests stream; every
// replica consumes from one shared durable consumer, so each request is
// handled once, and it is acknowledged only once the job is stored.
func (s *Service) consumeRequests(ctx context.Context) {
	js := s.store.JetStream()
	space := s.store.Space()
	var cons jetstream.Consumer
	for {
		var err error
		cons, err = js.CreateOrUpdateConsumer(ctx, space.RequestsStream(), jetstream.ConsumerConfig{
			Durable: "jobmanager", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
			MaxDeliver: -1, MaxAckPending: 1000,
		})
		if err == nil {
			break
		}
		s.log.Warn("requests consumer not ready", zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		body := msg.Data()
		// A request without an id takes one from its stream sequence, so
		// a redelivery is recognized as the same job.
		var probe struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(body, &probe) == nil && probe.ID == "" {
			if md, err := msg.Metadata(); err == nil {
				var m map[string]json.RawMessage
				if json.Unmarshal(body, &m) == nil {
					probe.ID = "req-" + strconv.FormatUint(md.Sequence.Stream, 10)
					m["id"], _ = json.Marshal(probe.ID)
					body, _ = json.Marshal(m)
				}
			}
		}
		_, err := s.submit(rctx, body)
		code := api.ErrorCode(err)
		if err != nil && (code == api.CodeUnavailable || code == api.CodeInternal) {
			s.log.Warn("durable request not stored, will retry", zap.String("request_id", probe.ID), zap.Error(err))
			_ = msg.NakWithDelay(time.Second)
			return
		}
		if err != nil {
			s.log.Warn("durable request refused", zap.String("request_id", probe.ID), zap.Error(err))
			s.publishRejected(err)
		} else {
			s.metrics.submissions.WithLabelValues("durable").Inc()
		}
		_ = msg.Ack()
	})
	if err != nil {
		s.log.Error("consume requests", zap.Error(err))
		return
	}
	<-ctx.Done()
	cc.Stop()
}

// publishRejected records a refused durable request (it has no reply subject).
func (s *Service) publishRejected(err error) {
	s.metrics.rejected.WithLabelValues("durable", string(api.ErrorCode(err))).Inc()
}

// updateJob applies fn with CAS and publishes an event when the job's
// state, epoch or node changed.
func (s *Service) updateJob(ctx context.Context, id string, fn func(*api.Job) error) (*api.Job, error) {
	j, _, err := s.updateJobFrom(ctx, &api.Job{ID: id}, 0, fn)
	return j, err
}

// updateJobFrom is updateJob from a record held at rev (0: read it first);
// it returns the record and its new revision.
func (s *Service) updateJobFrom(ctx context.Context, cur *api.Job, rev uint64, fn func(*api.Job) error) (*api.Job, uint64, error) {
	return s.updateJobWhy(ctx, cur, rev, "", fn)
}

// updateJobWhy is updateJobFrom for a change whose reason the job record
// cannot tell: why a master moved, the reason of a master_moved event.
// State changes explain themselves (transitionReason).
func (s *Service) updateJobWhy(ctx context.Context, cur *api.Job, rev uint64, why string, fn func(*api.Job) error) (*api.Job, uint64, error) {
	var before api.Job
	j, nrev, err := s.store.UpdateJobFrom(ctx, cur, rev, func(j *api.Job) error {
		before = *j
		if err := fn(j); err != nil {
			return err
		}
		j.UpdatedAt = time.Now().UTC()
		return nil
	})
	if err != nil {
		return j, nrev, err
	}
	switch {
	case before.State != j.State:
		s.publishEvent(j, api.EventState, transitionReason(&before, j))
	case before.Epoch != j.Epoch && j.Epoch > 0:
		s.publishEvent(j, api.EventMasterMoved, why)
	}
	return j, nrev, nil
}

// Reasons of state events (docs/operations.md). A master_moved event's
// reason is the leader's: timeout (its node went silent) or handover (its
// node shut down).
const (
	ReasonSubmitted       = "submitted"        // → created
	ReasonAssigned        = "assigned"         // created or pending (no capacity before) → running
	ReasonRestart         = "restart"          // pending after a failure, its backoff over → running
	ReasonNoCapacity      = "no_capacity"      // no job-master node can take the job → pending
	ReasonMasterFailed    = "master_failed"    // → pending (restart after backoff) or failed (error says why)
	ReasonMasterFinished  = "master_finished"  // → finished
	ReasonCancelRequested = "cancel_requested" // → canceling, or → canceled when no master ran
	ReasonMasterCanceled  = "master_canceled"  // canceling → canceled by the master
	ReasonForced          = "forced"           // canceling → canceled by the leader (cancel_timeout, dead master)
)

// transitionReason names why a job went from before to after; every state
// transition the job manager makes is told apart by the records alone.
func transitionReason(before, after *api.Job) string {
	switch after.State {
	case api.StateCreated:
		return ReasonSubmitted
	case api.StateRunning:
		if before.State == api.StatePending && before.NextAttemptAt != nil {
			return ReasonRestart
		}
		return ReasonAssigned
	case api.StatePending:
		if after.NextAttemptAt != nil {
			return ReasonMasterFailed
		}
		return ReasonNoCapacity
	case api.StateCanceling:
		return ReasonCancelRequested
	case api.StateCanceled:
		switch {
		case before.State != api.StateRunning && before.State != api.StateCanceling:
			return ReasonCancelRequested
		case after.Epoch != before.Epoch:
			return ReasonForced
		}
		return ReasonMasterCanceled
	case api.StateFinished:
		return ReasonMasterFinished
	case api.StateFailed:
		return ReasonMasterFailed
	}
	return ""
}

func (s *Service) publishEvent(j *api.Job, kind, reason string) {
	subj, err := s.store.Space().JobEvents(j.ID)
	if err != nil {
		return
	}
	ev := api.Event{Job: j.ID, Kind: kind, State: j.State, Epoch: j.Epoch, Node: j.Node, Reason: reason,
		Error: j.Error, Time: time.Now().UTC()}
	if j.State.Terminal() {
		ev.Detail = j.Detail
	}
	_ = s.deps.NC.Publish(subj, wire.Marshal(ev))
}

// sendCancel asks the job's master to cancel (OnCancel).
func (s *Service) sendCancel(j *api.Job) {
	subj, err := s.store.Space().MasterInbox(j.ID)
	if err != nil {
		return
	}
	_ = s.deps.NC.PublishMsg(wire.NewMsg(subj, wire.KindCancel, j.Epoch, nil))
}

func (s *Service) countReply(subject string, e *api.Error) {
	code := "ok"
	if e != nil {
		code = string(e.Code)
		if e.Code == api.CodeInternal {
			s.log.Error("api request failed", zap.String("subject", subject), zap.String("error", e.Message))
		}
	}
	if subject == s.store.Space().APISubmit() {
		if e != nil {
			s.metrics.rejected.WithLabelValues("request", code).Inc()
		} else {
			s.metrics.submissions.WithLabelValues("request").Inc()
		}
	}
	s.metrics.requests.WithLabelValues(shortSubject(subject), code).Inc()
}

// elect campaigns for the leader lease and leads while holding it.
func (s *Service) elect(ctx context.Context) {
	poll := min(s.cfg.LeaseTTL/5, 500*time.Millisecond)
	for {
		sent := time.Now()
		rev, err := s.store.AcquireLease(ctx, s.id)
		wait := poll
		switch {
		case err == nil:
			s.lead(ctx, rev, sent)
		case errors.Is(err, kvstate.ErrExists):
			// Act the moment the holder's lease lapses (a crashed or cut-off
			// leader's), not up to a poll later: take a lapsed lease over
			// by CAS on its revision, which fails if the holder renewed.
			at, lrev, ok, err := s.store.LeaseExpiry(ctx, s.cfg.LeaseTTL)
			if err != nil || !ok {
				break
			}
			if time.Now().After(at) {
				sent = time.Now()
				if nrev, err := s.store.RenewLease(ctx, s.id, lrev); err == nil {
					s.log.Info("took over a lapsed lease", zap.Time("lapsed_at", at))
					s.lead(ctx, nrev, sent)
					break
				}
			}
			wait = min(max(time.Until(at)+5*time.Millisecond, 5*time.Millisecond), poll)
		case ctx.Err() == nil:
			s.log.Warn("lease acquisition failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// leaseMargin is how long before its lease may lapse a leader stops acting.
func (s *Service) leaseMargin() time.Duration { return s.cfg.LeaseTTL / 10 }

// holdLease records that the lease, written by a request sent at sent, is
// ours until at least sent + TTL: nobody else can acquire it before.
func (s *Service) holdLease(sent time.Time) {
	s.leaseUntil.Store(sent.Add(s.cfg.LeaseTTL - s.leaseMargin()).UnixNano())
}

// mayLead reports whether this replica's lease is certainly still valid. A
// leader checks it before every decision, so one that was frozen or cut
// off past its lease does not act on a stale view when it comes back.
func (s *Service) mayLead() bool { return time.Now().UnixNano() < s.leaseUntil.Load() }

// lead runs the scheduler while the lease is renewed.
func (s *Service) lead(ctx context.Context, rev uint64, sent time.Time) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.holdLease(sent)
	defer s.leaseUntil.Store(0)
	s.leading.Store(true)
	s.metrics.leaderChanges.Inc()
	s.metrics.leader.Set(1)
	s.log.Info("leading", zap.Uint64("lease_rev", rev))
	defer func() {
		s.leading.Store(false)
		s.metrics.leader.Set(0)
		// Only the leader counts jobs by state; a former leader's counts
		// would go stale, so it stops exporting them.
		s.metrics.jobs.Reset()
	}()

	done := make(chan struct{})
	go func() {
		defer close(done)
		newLeader(s).run(lctx)
	}()
	renew := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer renew.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-done
			rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.store.ReleaseLease(rctx, rev)
			rcancel()
			s.log.Info("leadership released")
			return
		case <-renew.C:
			sent := time.Now()
			nrev, err := s.store.RenewLease(ctx, s.id, rev)
			switch {
			case err == nil:
				rev, lastOK = nrev, time.Now()
				s.holdLease(sent)
				continue
			case errors.Is(err, kvstate.ErrNotLeader):
				s.log.Warn("lease lost")
			case time.Since(lastOK) < s.cfg.LeaseTTL-s.cfg.LeaseTTL/3:
				s.log.Warn("lease renewal failed, retrying", zap.Error(err))
				continue
			default:
				s.log.Warn("lease renewal failed too long, stepping down", zap.Error(err))
			}
			cancel()
			<-done
			return
		}
	}
}
