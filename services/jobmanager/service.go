package jobmanager

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/internal/placement"
	"github.com/drover-run/drover/internal/runtime"
	"github.com/drover-run/drover/internal/svc"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
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
	// The state, by role (pkg/kvstate): each part of the service uses
	// only what it needs.
	conn       kvstate.Conn
	space      topics.Space
	jobs       kvstate.Jobs
	masters    kvstate.Masters
	workerRecs kvstate.Workers
	presence   kvstate.Presence
	scratch    runtime.ScratchState
	nodes      *placement.Placer
	// assigns sends the leader's assignments, batched per node.
	assigns *assigner
	// created holds the created events this replica published while it
	// led (created.go).
	created *createdLog
	leading atomic.Bool
	// election is this replica's campaign for the leader lease; term the
	// lease it holds, nil when none.
	election *kvstate.Election
	term     atomic.Pointer[kvstate.Term]
	// identity is this replica's authenticated NATS identity as the server
	// reports it, announced in its lease ("" without system access).
	identity string
	// sys is the system-account connection (nil without access) and
	// sysAccount the account whose disconnect events the leader follows.
	sys        *nats.Conn
	sysAccount string
	// nodeGone, set while leading, is told of job-master disconnects.
	nodeGone atomic.Pointer[func(node, reason string)]
	http     *obs.Server
	auth     *httpAuth
	console  *console
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
	auth, err := cfg.httpAuth()
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg: cfg, deps: deps, id: id, auth: auth,
		log:     deps.Log.With(zap.String("replica", id)),
		metrics: newMetrics(deps.Registry),
		nodes:   placement.NewPlacer(api.NodeJobMaster, cfg.NodeTTL()),
	}
	s.assigns = newAssigner(s)
	s.created = newCreatedLog(s.log)
	return s, nil
}

// ID returns the replica id.
func (s *Service) ID() string { return s.id }

// Leading reports whether this replica holds the leader lease.
func (s *Service) Leading() bool { return s.leading.Load() }

// KnownJobMasterNodes is how many job-master nodes this replica's placer
// knows: a job submitted while none of them can take it is stored pending.
func (s *Service) KnownJobMasterNodes() int { return s.nodes.Nodes() }

// Run serves until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	st, err := svc.OpenStore(ctx, &s.cfg.Common, s.deps.NC, s.log, svc.KVObserver(s.deps.Registry), false)
	if err != nil {
		return err
	}
	s.conn, s.space, s.jobs, s.masters, s.workerRecs, s.presence, s.scratch = st, st.Space(), st, st, st, st, st
	s.election = st.Election()
	go s.nodes.Run(ctx, st, s.log)
	defer s.openSystem(ctx)()
	stopCreated, err := s.created.start(s.deps.NC)
	if err != nil {
		return err
	}
	defer stopCreated()

	stopAPI, err := s.serveAPI(ctx)
	if err != nil {
		return err
	}
	defer stopAPI()

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
