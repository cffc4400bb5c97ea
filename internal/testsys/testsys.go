// Package testsys runs a whole Drover system in one test process: an
// embedded JetStream server and job manager, job-master and worker services,
// each on its own NATS connection as if it were its own process. Timings
// are short so failover happens in test time.
package testsys

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/topics"
	"github.com/drover-run/drover/services/jobmanager"
	"github.com/drover-run/drover/services/jobmaster"
	"github.com/drover-run/drover/services/worker"
)

// FastTiming is a valid schedule short enough for tests, with enough slack
// that a loaded 2-core CI machine does not see spurious failovers.
func FastTiming() config.Timing {
	return config.Timing{
		Heartbeat:       100 * time.Millisecond,
		MasterTimeout:   time.Second,
		WorkerSelfFence: 2500 * time.Millisecond,
		WorkerTimeout:   3 * time.Second,
		LeaseTTL:        time.Second,
		CancelTimeout:   2 * time.Second,
		AssignTimeout:   time.Second,
	}
}

// System is a running in-process deployment.
type System struct {
	t      testing.TB
	Server *server.Server
	Types  *framework.Registry
	Timing config.Timing
	// CallbackTimeout is the job-callback bound of nodes added from now on
	// (0: the runtime's default).
	CallbackTimeout time.Duration
	Client          *client.Client
	// Log is the logger every service added from now on writes to (tests
	// may replace it, e.g. with a zaptest/observer core).
	Log *zap.Logger
	// HTTPTokens and HTTPAnonymous configure the HTTP authentication of job
	// managers added from now on (DROVER_HTTP_TOKENS, DROVER_HTTP_ANONYMOUS).
	// Start opens the API to anonymous callers, explicitly: tests of
	// other things need no tokens; the authentication tests set their own.
	HTTPTokens, HTTPAnonymous string
	// Labels are the DROVER_LABELS ("k=v,k2=v2") of nodes added from now
	// on, by node id.
	Labels map[string]string

	mu    sync.Mutex
	procs map[string]*Proc
}

// Proc is one service "process": its connection, metrics and run.
type Proc struct {
	ID       string
	NC       *nats.Conn
	Registry *prometheus.Registry
	// Service is the *jobmanager.Service, *jobmaster.Service or *worker.Service.
	Service any
	cancel  context.CancelFunc
	done    chan error
}

// Start runs an embedded server; add services with the Add* methods.
func Start(t testing.TB, types *framework.Registry) *System {
	t.Helper()
	srv := natstest.RunServer(t)
	s := &System{t: t, Server: srv, Types: types, Timing: FastTiming(),
		Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), procs: map[string]*Proc{}, HTTPAnonymous: "admin"}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s.Client = client.New(nc, topics.MustNew(topics.DefaultPrefix))
	t.Cleanup(s.StopAll)
	return s
}

func (s *System) common(id, httpAddr string) config.Common {
	return config.Common{NATSURL: s.Server.ClientURL(), Prefix: topics.DefaultPrefix, Replicas: 1,
		NodeID: id, HTTPAddr: httpAddr, LogFormat: "json", LogLevel: "warn", Timing: s.Timing}
}

type runner interface{ Run(context.Context) error }

func (s *System) start(id string, run func(nc *nats.Conn, log *zap.Logger, reg *prometheus.Registry) (runner, error)) *Proc {
	s.t.Helper()
	nc, err := nats.Connect(s.Server.ClientURL(), nats.Name(id), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		s.t.Fatal(err)
	}
	reg := obs.NewRegistry()
	svc, err := run(nc, s.Log.With(zap.String("proc", id)), reg)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proc{ID: id, NC: nc, Registry: reg, Service: svc, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- svc.Run(ctx) }()
	s.mu.Lock()
	s.procs[id] = p
	s.mu.Unlock()
	return p
}

// AddJobManager starts a job manager replica.
func (s *System) AddJobManager(id string) *Proc { return s.AddJobManagerHTTP(id, "") }

// AddJobManagerHTTP starts a job manager replica serving HTTP on addr.
func (s *System) AddJobManagerHTTP(id, addr string) *Proc {
	return s.AddJobManagerWith(id, func(c *jobmanager.Config) { c.HTTPAddr = addr })
}

// AddJobManagerWith starts a job manager replica with the system's
// settings as changed by edit.
func (s *System) AddJobManagerWith(id string, edit func(*jobmanager.Config)) *Proc {
	cfg := jobmanager.Config{Common: s.common(id, ""), RestartBackoff: 100 * time.Millisecond,
		RestartMaxBackoff: time.Second, MaxRestarts: 3, HTTPTokens: s.HTTPTokens, HTTPAnonymous: s.HTTPAnonymous,
		UIMaxStreams: 64}
	edit(&cfg)
	return s.start(id, func(nc *nats.Conn, log *zap.Logger, reg *prometheus.Registry) (runner, error) {
		return jobmanager.New(cfg, jobmanager.Deps{NC: nc, Log: log, Registry: reg, Types: s.Types})
	})
}

// AddJobMaster starts a job-master node.
func (s *System) AddJobMaster(id string) *Proc { return s.AddJobMasterHTTP(id, "") }

// AddJobMasterHTTP starts a job-master node serving /metrics, /healthz and /readyz on addr.
func (s *System) AddJobMasterHTTP(id, addr string) *Proc {
	cfg := jobmaster.Config{Node: config.Node{Common: s.common(id, addr), CallbackTimeout: s.CallbackTimeout, Labels: s.Labels[id]}}
	return s.start(id, func(nc *nats.Conn, log *zap.Logger, reg *prometheus.Registry) (runner, error) {
		return jobmaster.New(cfg, jobmaster.Deps{NC: nc, Log: log, Registry: reg, Types: s.Types})
	})
}

// AddWorker starts a worker node.
func (s *System) AddWorker(id string) *Proc { return s.AddWorkerHTTP(id, "") }

// AddWorkerHTTP starts a worker node serving /metrics, /healthz and /readyz on addr.
func (s *System) AddWorkerHTTP(id, addr string) *Proc {
	cfg := worker.Config{Node: config.Node{Common: s.common(id, addr), CallbackTimeout: s.CallbackTimeout, Labels: s.Labels[id]}}
	return s.start(id, func(nc *nats.Conn, log *zap.Logger, reg *prometheus.Registry) (runner, error) {
		return worker.New(cfg, worker.Deps{NC: nc, Log: log, Registry: reg, Types: s.Types})
	})
}

// Proc returns a running process by id (nil if none).
func (s *System) Proc(id string) *Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[id]
}

// Stop ends a process gracefully (its SIGTERM path) and waits for it.
func (s *System) Stop(id string) {
	s.mu.Lock()
	p := s.procs[id]
	delete(s.procs, id)
	s.mu.Unlock()
	if p == nil {
		return
	}
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		s.t.Errorf("process %s did not stop", id)
	}
	p.NC.Close()
}

// Crash cuts a process off NATS at once, as a kill would: nothing it
// does afterwards reaches anyone. Its goroutines are then stopped.
func (s *System) Crash(id string) {
	s.mu.Lock()
	p := s.procs[id]
	delete(s.procs, id)
	s.mu.Unlock()
	if p == nil {
		return
	}
	p.NC.Close()
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		s.t.Errorf("process %s did not end after crash", id)
	}
}

// StopAll stops every process.
func (s *System) StopAll() {
	s.mu.Lock()
	ids := make([]string, 0, len(s.procs))
	for id := range s.procs {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.Stop(id)
	}
}

// WaitReady waits until the leader is elected and nodes are registered.
func (s *System) WaitReady(jobmasters, workers int) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		nodes, err := s.Client.Nodes(context.Background())
		if err == nil {
			jm, w := 0, 0
			for _, n := range nodes {
				if n.Kind == "jobmaster" {
					jm++
				} else {
					w++
				}
			}
			if jm >= jobmasters && w >= workers && s.placersKnow(jobmasters) {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("system not ready: %v %v", nodes, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// placersKnow reports whether every job manager's placer knows n
// job-master nodes: a job submitted before it does is stored pending, as no
// node could take it yet.
func (s *System) placersKnow(n int) bool {
	for _, p := range s.procs {
		if jm, ok := p.Service.(*jobmanager.Service); ok && jm.KnownJobMasterNodes() < n {
			return false
		}
	}
	return true
}

// ErrTimeout is returned by helpers that gave up.
var ErrTimeout = errors.New("testsys: timed out")

// WaitJob waits for a job to be terminal.
func (s *System) WaitJob(id string, within time.Duration) (*api.Job, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	j, err := s.Client.Wait(ctx, id, nil)
	if err != nil {
		return nil, fmt.Errorf("wait %s: %w (last %+v)", id, err, j)
	}
	return j, nil
}

// FreeAddr returns a loopback address with a free port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
