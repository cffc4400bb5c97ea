package worker

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

// Service is one worker node.
type Service struct {
	*svc.Node
	deps    Deps
	metrics *framework.Metrics

	wg sync.WaitGroup
	mu sync.Mutex
	// running maps job/worker to the live incarnation.
	running map[string]*framework.WorkerRuntime
	closing bool
}

// New builds a worker node; Run starts it.
func New(cfg Config, deps Deps) (*Service, error) {
	n, err := svc.NewNode(topics.KindWorker, cfg.Node, DefaultCapacity, deps.NC, deps.Log, deps.Registry)
	if err != nil {
		return nil, err
	}
	return &Service{Node: n, deps: deps, metrics: framework.NewMetrics(n.Registry),
		running: map[string]*framework.WorkerRuntime{}}, nil
}

// Run serves until ctx ends, then hands its workers back and returns.
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
	s.Log.Info("worker node started", zap.Int("capacity", s.Capacity), zap.Any("labels", s.Labels))
	s.KeepPresence(ctx, s.deps.Types.WorkerTypes(), s.load)
	s.shutdown()
	return nil
}

func (s *Service) load() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
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
	s.Log.Info("worker node leaving, workers handed back", zap.Int("workers", n))
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.Log.Warn("workers did not stop in time")
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
		return api.Errorf(api.CodeUnknownType, "worker type %q is not known on node %s", spec.Type, s.ID)
	}
	k := key(spec.Job, spec.Worker)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return api.Errorf(api.CodeUnavailable, "node %s is shutting down", s.ID)
	}
	if old := s.running[k]; old != nil {
		switch {
		case old.Spec().Epoch == spec.Epoch:
			return nil // a retried create: already running
		case old.Spec().Epoch > spec.Epoch:
			return api.Errorf(api.CodeFailedPrecondition, "worker %s already runs a newer epoch", spec.Worker)
		}
		old.Stop()
	} else if len(s.running) >= s.Capacity {
		return api.Errorf(api.CodeUnavailable, "node %s is full (%d workers)", s.ID, s.Capacity)
	}
	rt, err := framework.NewWorkerRuntime(framework.WorkerDeps{
		NC: s.NC, Store: s.Store, Log: s.Log, Metrics: s.metrics, Node: s.ID,
		Heartbeat: s.Cfg.Heartbeat, SelfFence: s.Cfg.WorkerSelfFence, Storage: s.StorageConfig(),
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
			rt.Logger().Info("worker ended", zap.Error(err))
		}
		s.mu.Lock()
		if s.running[k] == rt {
			delete(s.running, k)
		}
		s.mu.Unlock()
	}()
	return nil
}
