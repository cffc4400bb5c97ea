package jobmanager

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/internal/placement"
	"github.com/drover-run/drover/internal/svc"
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
	nodes   *placement.Placer
	leading atomic.Bool
	// leaseUntil (Unix ns) is when the lease this replica holds may lapse,
	// less a margin; 0 when it holds none.
	leaseUntil atomic.Int64
	// sys is the system-account connection (nil without access) and
	// sysAccount the account whose disconnect events the leader follows.
	sys        *nats.Conn
	sysAccount string
	http       *obs.Server
	auth       *httpAuth
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
	return &Service{
		cfg: cfg, deps: deps, id: id, auth: auth,
		log:     deps.Log.With(zap.String("replica", id)),
		metrics: newMetrics(deps.Registry),
		nodes:   placement.NewPlacer(api.NodeJobMaster, cfg.NodeTTL()),
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
	handlers := map[string]handler{
		space.APISubmit():  jobHandler(s.submit),
		space.APIGet():     jobHandler(s.get),
		space.APICancel():  jobHandler(s.cancel),
		space.APIList():    s.replyList,
		space.APINodes():   s.replyNodes,
		space.APIWorkers(): s.replyWorkers,
		space.APIEvents():  s.replyEvents,
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
				rep, e := s.answer(rctx, subj, h, msg.Data)
				s.respond(msg, subj, rep, e)
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
