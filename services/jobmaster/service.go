package jobmaster

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/placement"
	"github.com/drover-run/drover/internal/runtime"
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
	*svc.Node
	deps    Deps
	metrics *runtime.Metrics
	placer  *placement.Placer
	pacing  runtime.Pacing

	masters *svc.Runs[*runtime.MasterRuntime]
	// assigning bounds the assign requests handled at once.
	assigning chan struct{}
}

// maxParallelAssigns is how many assign requests a node handles at once,
// each of up to wire.MaxAssignments assignments whose records it reads in
// two batched reads. The leader sends a node one request at a time (the
// assignments made meanwhile go in its next), so more than one is a
// leader that just lost the lease, or someone else's.
const maxParallelAssigns = 16

// New builds a job-master node; Run starts it.
func New(cfg Config, deps Deps) (*Service, error) {
	n, err := svc.NewNode(topics.KindJobMaster, cfg.Node, DefaultCapacity, deps.NC, deps.Log, deps.Registry)
	if err != nil {
		return nil, err
	}
	return &Service{Node: n, deps: deps, metrics: runtime.NewMetrics(n.Registry),
		placer: placement.NewPlacer(api.NodeWorker, cfg.NodeTTL()),
		pacing: runtime.Pacing{PlacementBackoff: cfg.PlacementBackoff, PlacementBackoffMax: cfg.PlacementBackoffMax,
			MaxRecreations: cfg.MaxRecreations, LateBurst: cfg.WorkerLateBurst, WorkerTimeoutMax: cfg.WorkerTimeoutMax,
			LogRate: cfg.WorkerLogRate},
		masters:   svc.NewRuns[*runtime.MasterRuntime](n.ID, "master", n.Capacity),
		assigning: make(chan struct{}, maxParallelAssigns)}, nil
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
	s.KeepPresence(ctx, s.deps.Types.Names(), s.masters.Len)
	s.handover()
	return nil
}

// refs names every master this node runs.
func (s *Service) refs() []wire.MasterRef {
	var out []wire.MasterRef
	s.masters.Each(func(m *runtime.MasterRuntime) {
		out = append(out, wire.MasterRef{Job: m.JobID(), Epoch: m.Epoch()})
	})
	return out
}

// heartbeat tells the job manager, every heartbeat, which masters run here.
func (s *Service) heartbeat(ctx context.Context) {
	t := time.NewTicker(s.Cfg.Heartbeat)
	defer t.Stop()
	subj := s.Store.Space().ManagerHeartbeat()
	for {
		hb := wire.NodeHeartbeat{Node: s.ID, Masters: s.refs()}
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
	refs := s.refs()
	s.masters.Close((*runtime.MasterRuntime).Stop, 15*time.Second)
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
		var as wire.Assignments
		if !svc.Decode(msg, &as) {
			return
		}
		if n := len(as.Assign); n == 0 || n > wire.MaxAssignments {
			svc.Reply(msg, api.Errorf(api.CodeInvalidArgument, "an assign request carries 1 to %d assignments, not %d", wire.MaxAssignments, n))
			return
		}
		// Off the control subscription, bounded: the leader's order
		// holds, as it sends a job's next control message only after
		// this reply.
		s.assigning <- struct{}{}
		go func() {
			defer func() { <-s.assigning }()
			runs, errs := s.assignAll(as.Assign)
			rep := wire.AssignReplies{Results: make([]wire.ControlReply, len(errs))}
			for i, err := range errs {
				rep.Results[i] = wire.ControlReply{OK: err == nil}
				if err != nil {
					rep.Results[i].Error = api.AsError(err)
				}
			}
			_ = msg.Respond(wire.Marshal(rep))
			// Answered first: a master that takes its node down at once
			// has still been accepted, and the leader counts the crash.
			for _, run := range runs {
				run()
			}
		}()
	case wire.KindStopMaster:
		var req wire.StopMaster
		if svc.Decode(msg, &req) {
			s.masters.StopUpTo(req.Job, req.Epoch)
			svc.Reply(msg, nil)
		}
	default:
		svc.Reply(msg, api.Errorf(api.CodeInvalidArgument, "unknown control kind %q", wire.Kind(msg)))
	}
}

// assignAll checks and prepares a request's assignments: the records of
// all of them are read at once (two batched reads, not two per master),
// then each is checked and prepared on its own; the result of each, in
// order, is what the leader hears, and runs start the accepted masters.
func (s *Service) assignAll(as []wire.Assign) (runs []func(), errs []error) {
	errs = make([]error, len(as))
	jobs := make([]string, 0, len(as))
	for i, a := range as {
		if err := topics.ValidateID("job", a.Job); err != nil {
			errs[i] = api.Errorf(api.CodeInvalidArgument, "%v", err)
			continue
		}
		jobs = append(jobs, a.Job)
	}
	if len(jobs) == 0 {
		return nil, errs
	}
	// The records, not the message, say what to run.
	ctx, cancel := context.WithTimeout(context.Background(), s.Cfg.AssignTimeout)
	defer cancel()
	var (
		records map[string]*api.Job
		jobsErr error
		read    = make(chan struct{})
	)
	go func() {
		defer close(read)
		records, jobsErr = s.Store.GetJobs(ctx, jobs)
	}()
	masters, mastersErr := s.Store.GetMasters(ctx, jobs)
	<-read
	for _, err := range []error{mastersErr, jobsErr} {
		if err != nil {
			s.Log.Warn("assignment records not read", zap.Int("assignments", len(jobs)), zap.Error(err))
		}
	}
	for i, a := range as {
		if errs[i] == nil {
			var run func()
			if run, errs[i] = s.assign(a, masters[a.Job], mastersErr, records[a.Job], jobsErr); run != nil {
				runs = append(runs, run)
			}
		}
	}
	return runs, errs
}

// assign prepares the master of one assignment if its records, m and job
// (zero and nil when absent or unread), hold it; run starts it.
func (s *Service) assign(a wire.Assign, m kvstate.MasterAt, mastersErr error, job *api.Job, jobsErr error) (run func(), err error) {
	if mastersErr != nil || m.Record == nil {
		return nil, api.Errorf(api.CodeFailedPrecondition, "assignment of %s: no master record", a.Job)
	}
	rec := m.Record
	if rec.Epoch != a.Epoch || m.Rev != a.Rev || rec.Node != s.ID {
		s.Log.Warn("refused an assignment the master record does not hold", zap.String("job_id", a.Job),
			zap.Uint64("epoch", a.Epoch), zap.Uint64("record_epoch", rec.Epoch), zap.String("record_node", rec.Node))
		return nil, api.Errorf(api.CodeFailedPrecondition, "assignment of %s at epoch %d: the master record holds epoch %d on %s", a.Job, a.Epoch, rec.Epoch, rec.Node)
	}
	if jobsErr != nil || job == nil {
		return nil, api.Errorf(api.CodeFailedPrecondition, "assignment of %s: no job record", a.Job)
	}
	jt, ok := s.deps.Types.Type(job.Type)
	if !ok {
		return nil, api.Errorf(api.CodeUnknownType, "job type %q is not known on node %s", job.Type, s.ID)
	}
	return s.masters.Prepare(a.Job, a.Epoch, func() (*runtime.MasterRuntime, error) {
		return runtime.NewMasterRuntime(runtime.MasterDeps{
			NC: s.NC, Store: s.Store, Placer: s.placer, Log: s.Log, Registerer: s.Registry,
			Metrics: s.metrics, Node: s.ID, WorkerTimeout: s.Cfg.WorkerTimeout, DispatchTimeout: s.Cfg.AssignTimeout,
			Storage: s.StorageConfig(), CallbackTimeout: s.Cfg.CallbackTimeout, Pacing: s.pacing,
		}, jt, runtime.Assignment{Job: *job, Epoch: a.Epoch, Rev: a.Rev, Master: rec})
	}, func(_ *runtime.MasterRuntime, err error) {
		s.Log.Warn("master ended", zap.String("job_id", a.Job), zap.Uint64("epoch", a.Epoch), zap.Error(err))
	})
}
