package worker

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/runtime"
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
	metrics *runtime.Metrics
	// lines rate-limits the per-worker log lines of all its workers.
	lines *runtime.LineLimit

	// workers maps job/worker to the live incarnation.
	workers *svc.Runs[*workerRun]
	// hub sends the workers' heartbeats, a message per job, and hands
	// them their job's broadcasts, a subscription per job.
	hub *runtime.Hub
}

// workerRun binds a worker incarnation to its job type's constructor.
type workerRun struct {
	*runtime.WorkerRuntime
	factory func(framework.WorkerHandle) (framework.Worker, error)
}

func (w *workerRun) Run(ctx context.Context) error { return w.WorkerRuntime.Run(ctx, w.factory) }
func (w *workerRun) Epoch() uint64                 { return w.Spec().Epoch }

// New builds a worker node; Run starts it.
func New(cfg Config, deps Deps) (*Service, error) {
	n, err := svc.NewNode(topics.KindWorker, cfg.Node, DefaultCapacity, deps.NC, deps.Log, deps.Registry)
	if err != nil {
		return nil, err
	}
	metrics := runtime.NewMetrics(n.Registry)
	return &Service{Node: n, deps: deps, metrics: metrics, lines: runtime.NewLineLimit(cfg.WorkerLogRate, metrics),
		workers: svc.NewRuns[*workerRun](n.ID, "worker", n.Capacity),
		hub:     runtime.NewHub(deps.NC, cfg.Space(), cfg.Heartbeat)}, nil
}

// Run serves until ctx ends, then hands its workers back and returns.
func (s *Service) Run(ctx context.Context) error {
	stopHub, err := s.hub.Start()
	if err != nil {
		return err
	}
	// After the workers are handed back: they heartbeat until they stop.
	defer stopHub()
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
	s.KeepPresence(ctx, s.deps.Types.WorkerTypes(), s.workers.Len)
	s.shutdown()
	return nil
}

// shutdown hands every worker back to its master (graceful node exit).
func (s *Service) shutdown() {
	n := s.workers.Len()
	s.Log.Info("worker node leaving, workers handed back", zap.Int("workers", n))
	if !s.workers.Close(func(w *workerRun) { w.Leave() }, 10*time.Second) {
		s.Log.Warn("workers did not stop in time")
	}
}

func key(job, worker string) string { return job + "/" + worker }

func (s *Service) onControl(msg *nats.Msg) {
	switch wire.Kind(msg) {
	case wire.KindCreate:
		var spec runtime.WorkerSpec
		if svc.Decode(msg, &spec) {
			svc.Reply(msg, s.create(spec))
		}
	case wire.KindStopWorker:
		var req wire.StopWorker
		if svc.Decode(msg, &req) {
			s.workers.StopUpTo(key(req.Job, req.Worker), req.Epoch)
			svc.Reply(msg, nil)
		}
	default:
		svc.Reply(msg, api.Errorf(api.CodeInvalidArgument, "unknown control kind %q", wire.Kind(msg)))
	}
}

func (s *Service) create(spec runtime.WorkerSpec) error {
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
	return s.workers.Start(key(spec.Job, spec.Worker), spec.Epoch, func() (*workerRun, error) {
		rt, err := runtime.NewWorkerRuntime(runtime.WorkerDeps{
			NC: s.NC, Store: s.Store, Log: s.Log, Metrics: s.metrics, Node: s.ID, Registerer: s.Registry,
			Heartbeat: s.Cfg.Heartbeat, Hub: s.hub, SelfFence: s.Cfg.WorkerSelfFence, Storage: s.StorageConfig(),
			CallbackTimeout: s.Cfg.CallbackTimeout, Lines: s.lines,
		}, spec)
		if err != nil {
			return nil, err
		}
		return &workerRun{WorkerRuntime: rt, factory: factory}, nil
	}, func(w *workerRun, err error) {
		w.Logger().Info("worker ended", zap.Error(err))
	})
}
