package jobmaster

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

// Service is one job-master node.
type Service struct {
	cfg     Config
	deps    Deps
	id      string
	labels  map[string]string
	log     *zap.Logger
	metrics *framework.Metrics
	placer  *framework.Placer
	started time.Time

	store   *kvstate.Store
	wg      sync.WaitGroup
	mu      sync.Mutex
	running map[string]*framework.MasterRuntime
	closing bool
}

// New builds a job-master node; Run starts it.
func New(cfg Config, deps Deps) (*Service, error) {
	labels, err := config.ParseLabels(cfg.Labels)
	if err != nil {
		return nil, err
	}
	if deps.Registry == nil {
		deps.Registry = obs.NewRegistry()
	}
	id := cfg.NodeIDOr(topics.KindJobMaster)
	return &Service{
		cfg: cfg, deps: deps, id: id, labels: labels,
		log:     deps.Log.With(zap.String("node", id)),
		metrics: framework.NewMetrics(deps.Registry),
		placer:  framework.NewPlacer(cfg.NodeTTL()),
		running: map[string]*framework.MasterRuntime{},
		started: time.Now().UTC(),
	}, nil
}

// ID returns the node id.
func (s *Service) ID() string { return s.id }

// Run serves until ctx ends, then hands its masters over and returns.
func (s *Service) Run(ctx context.Context) error {
	st, err := svc.OpenStore(ctx, &s.cfg.Common, s.deps.NC, s.log)
	if err != nil {
		return err
	}
	s.store = st
	go func() {
		if err := s.placer.Run(ctx, st, s.log); err != nil {
			s.log.Error("placer stopped", zap.Error(err))
		}
	}()
	subj, err := st.Space().NodeControl(topics.KindJobMaster, s.id)
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
	go s.heartbeat(ctx)

	s.log.Info("job-master node started", zap.Int("capacity", s.cfg.Capacity), zap.Any("labels", s.labels))
	svc.KeepPresence(ctx, st, s.cfg.Heartbeat, s.log, s.presence)
	s.handover()
	return nil
}

func natsUp(nc *nats.Conn) error {
	if !nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	return nil
}

func (s *Service) masters() []wire.MasterRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]wire.MasterRef, 0, len(s.running))
	for _, m := range s.running {
		out = append(out, wire.MasterRef{Job: m.JobID(), Epoch: m.Epoch()})
	}
	return out
}

// heartbeat tells the job manager, every heartbeat, which masters run here.
func (s *Service) heartbeat(ctx context.Context) {
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	subj := s.store.Space().ManagerHeartbeat()
	for {
		hb := wire.NodeHeartbeat{Node: s.id, Masters: s.masters()}
		_ = s.deps.NC.PublishMsg(wire.NewMsg(subj, wire.KindNodeHeartbeat, 0, wire.Marshal(hb)))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) presence() api.Node {
	s.mu.Lock()
	load := len(s.running)
	s.mu.Unlock()
	return api.Node{ID: s.id, Kind: api.NodeJobMaster, Labels: s.labels, Capacity: s.cfg.Capacity, Load: load,
		Types: s.deps.Types.Names(), HTTPAddr: s.cfg.HTTPAddr, StartedAt: s.started}
}

// handover stops every master without a write and asks the leader to move
// them now, instead of after the master timeout.
func (s *Service) handover() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	refs := s.masters()
	s.mu.Lock()
	for _, m := range s.running {
		m.Stop()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if len(refs) > 0 {
		msg := wire.NewMsg(s.store.Space().ManagerControl(), wire.KindHandover, 0,
			wire.Marshal(wire.Handover{Node: s.id, Masters: refs}))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := s.deps.NC.RequestMsgWithContext(ctx, msg)
		cancel()
		if err != nil {
			s.log.Warn("hand-over not acknowledged; masters move after the master timeout", zap.Error(err))
		}
	}
	_ = s.deps.NC.Flush()
	s.log.Info("job-master node left", zap.Int("masters_handed_over", len(refs)))
}

func (s *Service) onControl(msg *nats.Msg) {
	switch wire.Kind(msg) {
	case wire.KindAssign:
		var a wire.Assign
		if svc.Decode(msg, &a) {
			svc.Reply(msg, s.assign(a))
		}
	case wire.KindStopMaster:
		var req wire.StopMaster
		if svc.Decode(msg, &req) {
			s.mu.Lock()
			if m := s.running[req.Job]; m != nil && m.Epoch() <= req.Epoch {
				m.Stop()
			}
			s.mu.Unlock()
			svc.Reply(msg, nil)
		}
	default:
		svc.Reply(msg, api.Errorf(api.CodeInvalidArgument, "unknown control kind %q", wire.Kind(msg)))
	}
}

func (s *Service) assign(a wire.Assign) error {
	if err := topics.ValidateID("job", a.Job.ID); err != nil {
		return api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	jt, ok := s.deps.Types.Type(a.Job.Type)
	if !ok {
		return api.Errorf(api.CodeUnknownType, "job type %q is not known on node %s", a.Job.Type, s.id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return api.Errorf(api.CodeUnavailable, "node %s is shutting down", s.id)
	}
	if old := s.running[a.Job.ID]; old != nil {
		switch {
		case old.Epoch() == a.Epoch:
			return nil
		case old.Epoch() > a.Epoch:
			return api.Errorf(api.CodeFailedPrecondition, "job %s already runs a newer epoch here", a.Job.ID)
		}
		old.Stop()
	} else if len(s.running) >= s.cfg.Capacity {
		return api.Errorf(api.CodeUnavailable, "node %s is full (%d masters)", s.id, s.cfg.Capacity)
	}
	m, err := framework.NewMasterRuntime(framework.MasterDeps{
		NC: s.deps.NC, Store: s.store, Placer: s.placer, Log: s.log, Registerer: s.deps.Registry,
		Metrics: s.metrics, Node: s.id, WorkerTimeout: s.cfg.WorkerTimeout, DispatchTimeout: s.cfg.AssignTimeout,
	}, jt, framework.Assignment{Job: a.Job, Epoch: a.Epoch, Rev: a.Rev})
	if err != nil {
		return err
	}
	s.running[a.Job.ID] = m
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := m.Run(context.Background())
		if err != nil && !errors.Is(err, framework.ErrStopped) {
			s.log.Warn("master ended", zap.String("job_id", a.Job.ID), zap.Uint64("epoch", a.Epoch), zap.Error(err))
		}
		s.mu.Lock()
		if s.running[a.Job.ID] == m {
			delete(s.running, a.Job.ID)
		}
		s.mu.Unlock()
	}()
	return nil
}
