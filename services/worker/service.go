package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/internal/svc"
	"github.com/drover-run/drover/internal/wire"
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
	Types    *framework.Registry
}

// Service is one worker node.
type Service struct {
	cfg     Config
	deps    Deps
	id      string
	labels  map[string]string
	log     *zap.Logger
	metrics *framework.Metrics
	started time.Time

	store *kvstate.Store
	wg    sync.WaitGroup
	mu    sync.Mutex
	// running maps job/worker to the live incarnation.
	running map[string]*framework.WorkerRuntime
	closing bool
}

// New builds a worker node; Run starts it.
func New(cfg Config, deps Deps) (*Service, error) {
	labels, err := config.ParseLabels(cfg.Labels)
	if err != nil {
		return nil, err
	}
	if deps.Registry == nil {
		deps.Registry = obs.NewRegistry()
	}
	id := cfg.NodeIDOr(topics.KindWorker)
	return &Service{
		cfg: cfg, deps: deps, id: id, labels: labels,
		log:     deps.Log.With(zap.String("node", id)),
		metrics: framework.NewMetrics(deps.Registry),
		running: map[string]*framework.WorkerRuntime{},
		started: time.Now().UTC(),
	}, nil
}

// ID returns the node id.
func (s *Service) ID() string { return s.id }

// Run serves until ctx ends, then hands its workers back and returns.
func (s *Service) Run(ctx context.Context) error {
	st, err := svc.OpenStore(ctx, &s.cfg.Common, s.deps.NC, s.log)
	if err != nil {
		return err
	}
	s.store = st
	subj, err := st.Space().NodeControl(topics.KindWorker, s.id)
	if err != nil {
		return err
	}
	sub, err := s.deps.NC.Subscribe(subj, s.onControl)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()

	srv := obs.NewServer(s.deps.Registry, map[string]obs.Check{
		"nats":  func(context.Context) error { return natsUp(s.deps.NC) },
		"state": st.Ping,
	}, nil)
	srvCtx, stopSrv := context.WithCancel(context.Background())
	defer stopSrv()
	go func() {
		if err := srv.Serve(srvCtx, s.cfg.HTTPAddr, s.log); err != nil {
			s.log.Error("http server", zap.Error(err))
		}
	}()

	s.log.Info("worker node started", zap.Int("capacity", s.cfg.Capacity), zap.Any("labels", s.labels))
	svc.KeepPresence(ctx, st, s.cfg.Heartbeat, s.log, s.presence)
	s.shutdown()
	return nil
}

func natsUp(nc *nats.Conn) error {
	if !nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	return nil
}

func (s *Service) presence() api.Node {
	s.mu.Lock()
	load := len(s.running)
	s.mu.Unlock()
	return api.Node{ID: s.id, Kind: api.NodeWorker, Labels: s.labels, Capacity: s.cfg.Capacity, Load: load,
		Types: s.deps.Types.WorkerTypes(), HTTPAddr: s.cfg.HTTPAddr, StartedAt: s.started}
}

// shutdown hands every worker back to its master (graceful node exit).
func (s *Service) shutdown() {
	s.mu.Lock()
	s.closing = true
	for _, w := range s.running {
		w.Leave()
	}
	n := len(s.running)
	s.mu.Unlock()
	s.log.Info("worker node leaving, workers handed back", zap.Int("workers", n))
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.log.Warn("workers did not stop in time")
	}
}

func key(job, worker string) string { return job + "/" + worker }

func (s *Service) onControl(msg *nats.Msg) {
	switch wire.Kind(msg) {
	case wire.KindCreate:
		var spec framework.WorkerSpec
		if svc.Decode(msg, &spec) {
			svc.Reply(msg, s.create(spec))
		}
	case wire.KindStopWorker:
		var req wire.StopWorker
		if svc.Decode(msg, &req) {
			s.mu.Lock()
			if w := s.running[key(req.Job, req.Worker)]; w != nil && w.Spec().Epoch <= req.Epoch {
				w.Stop()
			}
			s.mu.Unlock()
			svc.Reply(msg, nil)
		}
	default:
		svc.Reply(msg, api.Errorf(api.CodeInvalidArgument, "unknown control kind %q", wire.Kind(msg)))
	}
}

func (s *Service) create(spec framework.WorkerSpec) error {
	if err := topics.ValidateID("job", spec.Job); err != nil {
		return api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	if err := topics.ValidateID("worker", spec.Worker); err != nil {
		return api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	factory, ok := s.deps.Types.WorkerFactory(spec.Type)
	if !ok {
		return api.Errorf(api.CodeUnknownType, "worker type %q is not known on node %s", spec.Type, s.id)
	}
	k := key(spec.Job, spec.Worker)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return api.Errorf(api.CodeUnavailable, "node %s is shutting down", s.id)
	}
	if old := s.running[k]; old != nil {
		switch {
		case old.Spec().Epoch == spec.Epoch:
			return nil // a retried create: already running
		case old.Spec().Epoch > spec.Epoch:
			return api.Errorf(api.CodeFailedPrecondition, "worker %s already runs a newer epoch", spec.Worker)
		}
		old.Stop()
	} else if len(s.running) >= s.cfg.Capacity {
		return api.Errorf(api.CodeUnavailable, "node %s is full (%d workers)", s.id, s.cfg.Capacity)
	}
	rt, err := framework.NewWorkerRuntime(framework.WorkerDeps{
		NC: s.deps.NC, Store: s.store, Log: s.log, Metrics: s.metrics, Node: s.id,
		Heartbeat: s.cfg.Heartbeat, SelfFence: s.cfg.WorkerSelfFence,
	}, spec)
	if err != nil {
		return err
	}
	s.running[k] = rt
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := rt.Run(context.Background(), factory)
		if err != nil && !errors.Is(err, framework.ErrStopped) {
			s.log.Info("worker ended", zap.String("job_id", spec.Job), zap.String("worker_id", spec.Worker),
				zap.Uint64("worker_epoch", spec.Epoch), zap.Error(err))
		}
		s.mu.Lock()
		if s.running[k] == rt {
			delete(s.running, k)
		}
		s.mu.Unlock()
	}()
	return nil
}
