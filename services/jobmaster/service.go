package jobmaster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/svc"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
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
	*svc.Node
	deps    Deps
	metrics *framework.Metrics
	placer  *framework.Placer

	wg      sync.WaitGroup
	mu      sync.Mutex
	running map[string]*framework.MasterRuntime
	closing bool
}

// New builds a job-master node; Run starts it.
func New(cfg Config, deps Deps) (*Service, error) {
	n, err := svc.NewNode(topics.KindJobMaster, cfg.Node, DefaultCapacity, deps.NC, deps.Log, deps.Registry)
	if err != nil {
		return nil, err
	}
	return &Service{Node: n, deps: deps, metrics: framework.NewMetrics(n.Registry),
		placer:  framework.NewPlacer(api.NodeWorker, cfg.NodeTTL()),
		running: map[string]*framework.MasterRuntime{}}, nil
}

// Run serves until ctx ends, then hands its masters over and returns.
func (s *Service) Run(ctx context.Context) error {
	unsubscribe, err := s.Open(ctx, s.onControl)
	if err != nil {
		return err
	}
	defer unsubscribe()
	stopHTTP, err := s.ServeHTTP()
	if err != nil {
		return err
	}
	defer stopHTTP()
	go s.placer.Run(ctx, s.Store, s.Log)
	go s.heartbeat(ctx)
	s.Log.Info("job-master node started", zap.Int("capacity", s.Capacity), zap.Any("labels", s.Labels))
	s.KeepPresence(ctx, s.deps.Types.Names(), s.load)
	s.handover()
	return nil
}

func (s *Service) load() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
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
	t := time.NewTicker(s.Cfg.Heartbeat)
	defer t.Stop()
	subj := s.Store.Space().ManagerHeartbeat()
	for {
		hb := wire.NodeHeartbeat{Node: s.ID, Masters: s.masters()}
		_ = s.deps.NC.PublishMsg(wire.NewMsg(subj, wire.KindNodeHeartbeat, 0, wire.Marshal(hb)))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
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
		msg := wire.NewMsg(s.Store.Space().ManagerControl(), wire.KindHandover, 0,
			wire.Marshal(wire.Handover{Node: s.ID, Masters: refs}))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := s.deps.NC.RequestMsgWithContext(ctx, msg)
		cancel()
		if err != nil {
			s.Log.Warn("hand-over not acknowledged; masters move after the master timeout", zap.Error(err))
		}
	}
	_ = s.deps.NC.Flush()
	s.Log.Info("job-master node left", zap.Int("masters_handed_over", len(refs)))
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
		return api.Errorf(api.CodeUnknownType, "job type %q is not known on node %s", a.Job.Type, s.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return api.Errorf(api.CodeUnavailable, "node %s is shutting down", s.ID)
	}
	if old := s.running[a.Job.ID]; old != nil {
		switch {
		case old.Epoch() == a.Epoch:
			return nil
		case old.Epoch() > a.Epoch:
			return api.Errorf(api.CodeFailedPrecondition, "job %s already runs a newer epoch here", a.Job.ID)
		}
		old.Stop()
	} else if len(s.running) >= s.Capacity {
		return api.Errorf(api.CodeUnavailable, "node %s is full (%d masters)", s.ID, s.Capacity)
	}
	m, err := framework.NewMasterRuntime(framework.MasterDeps{
		NC: s.NC, Store: s.Store, Placer: s.placer, Log: s.Log, Registerer: s.Registry,
		Metrics: s.metrics, Node: s.ID, WorkerTimeout: s.Cfg.WorkerTimeout, DispatchTimeout: s.Cfg.AssignTimeout,
		Storage: s.StorageConfig(),
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
			s.Log.Warn("master ended", zap.String("job_id", a.Job.ID), zap.Uint64("epoch", a.Epoch), zap.Error(err))
		}
		s.mu.Lock()
		if s.running[a.Job.ID] == m {
			delete(s.running, a.Job.ID)
		}
		s.mu.Unlock()
	}()
	return nil
}
