package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/internal/svc"
	"github.com/drover-run/drover/jobs/benchjobs"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
	"github.com/drover-run/drover/services/jobmanager"
	"github.com/drover-run/drover/services/jobmaster"
	"github.com/drover-run/drover/services/worker"
)

// registry is what every bench process runs: the built-in job types and
// the benchmark's own.
func registry() *framework.Registry {
	r := builtin.Registry()
	if err := benchjobs.Register(r); err != nil {
		panic(err)
	}
	return r
}

func common(url, prefix, nodeID string) config.Common {
	return config.Common{NATSURL: url, Prefix: prefix, Replicas: 1, NodeID: nodeID,
		LogFormat: "json", LogLevel: "warn", Timing: config.DefaultTiming()}
}

func newLogger() *zap.Logger {
	log, err := obs.NewLogger("json", "warn")
	if err != nil {
		panic(err)
	}
	return log
}

func jobManagerConfig(c config.Common) jobmanager.Config {
	return jobmanager.Config{Common: c, RestartBackoff: time.Second, RestartMaxBackoff: time.Minute, MaxRestarts: 10}
}

// deployment is a Drover deployment in this process: each service with its
// own NATS connection, as if it were its own process.
type deployment struct {
	prefix string
	space  topics.Space
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	conns  []*nats.Conn
	// jm is nil when the job manager is a process (deployJobManager).
	jm     *jobmanager.Service
	client *client.Client
	log    *zap.Logger
	// leaseHeld: the benchmark holds the leader lease, nobody schedules.
	leaseHeld bool
	// url is the servers'; replicas, those of every bucket and stream the
	// services create.
	url      string
	replicas int
}

// common is the configuration of one of the deployment's services.
func (d *deployment) common(nodeID string) config.Common {
	c := common(d.url, d.prefix, nodeID)
	c.Replicas = d.replicas
	return c
}

// holdLease takes the deployment's leader lease and renews it until the
// deployment closes.
func (d *deployment) holdLease(nc *nats.Conn) error {
	c := d.common(d.prefix + "-lease")
	st, err := svc.OpenStore(d.ctx, &c, nc, d.log, nil, false)
	if err != nil {
		return err
	}
	// The campaign wins at once: the deployment is new. Its term renews the
	// lease until the deployment's context ends.
	if _, err := st.Election().Campaign(d.ctx, func() kvstate.Lease { return kvstate.Lease{Holder: "bench"} }); err != nil {
		return fmt.Errorf("hold the leader lease: %w", err)
	}
	return nil
}

// deploy starts a job manager and the nodes asked for. With holdLease the
// benchmark itself holds the leader lease, so the job manager serves the
// API without scheduling anything, as a replica does while another leads.
func (b *bench) deploy(prefix string, jobMasters, workerNodes int, holdLease bool) (*deployment, error) {
	d := &deployment{url: b.url, prefix: prefix, replicas: max(b.replicas, 1), space: topics.MustNew(prefix),
		log: newLogger(), leaseHeld: holdLease}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			d.close()
		}
	}()
	conn := func(name string) (*nats.Conn, error) {
		nc, err := nats.Connect(b.url, nats.Name(name), nats.MaxReconnects(-1))
		if err == nil {
			d.conns = append(d.conns, nc)
		}
		return nc, err
	}
	start := func(name string, r interface{ Run(context.Context) error }) {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := r.Run(d.ctx); err != nil && d.ctx.Err() == nil {
				logf("%s stopped: %v", name, err)
			}
		}()
	}

	if holdLease {
		nc, err := conn(prefix + "-lease")
		if err != nil {
			return nil, err
		}
		if err := d.holdLease(nc); err != nil {
			return nil, err
		}
	}
	nc, err := conn(prefix + "-jobmanager")
	if err != nil {
		return nil, err
	}
	jm, err := jobmanager.New(jobManagerConfig(d.common(prefix+"-jm")),
		jobmanager.Deps{NC: nc, Log: d.log, Types: registry()})
	if err != nil {
		return nil, err
	}
	d.jm = jm
	start("job manager", jm)
	for i := range jobMasters {
		id := fmt.Sprintf("%s-jobmaster-%d", prefix, i)
		nc, err := conn(id)
		if err != nil {
			return nil, err
		}
		s, err := jobmaster.New(jobmaster.Config{Node: config.Node{Common: d.common(id), Capacity: 100000}},
			jobmaster.Deps{NC: nc, Log: d.log, Types: registry()})
		if err != nil {
			return nil, err
		}
		start(id, s)
	}
	for i := range workerNodes {
		id := fmt.Sprintf("%s-worker-%d", prefix, i)
		nc, err := conn(id)
		if err != nil {
			return nil, err
		}
		s, err := worker.New(worker.Config{Node: config.Node{Common: d.common(id), Capacity: 100000}},
			worker.Deps{NC: nc, Log: d.log, Types: registry()})
		if err != nil {
			return nil, err
		}
		start(id, s)
	}
	cnc, err := conn(prefix + "-client")
	if err != nil {
		return nil, err
	}
	d.client = client.New(cnc, d.space)
	if err := d.waitReady(jobMasters + workerNodes); err != nil {
		return nil, err
	}
	ok = true
	return d, nil
}

// waitReady waits for the API, the leader and the nodes.
func (d *deployment) waitReady(nodes int) error {
	return poll(30*time.Second, "job manager, leader and nodes", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := d.client.Get(ctx, "bench-probe"); api.ErrorCode(err) != api.CodeNotFound {
			return false
		}
		if d.jm != nil && d.jm.Leading() == d.leaseHeld {
			return false
		}
		ns, err := d.client.Nodes(ctx)
		return err == nil && len(ns) >= nodes
	})
}

func (d *deployment) close() {
	d.cancel()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		logf("deployment %s did not stop in time", d.prefix)
	}
	for _, nc := range d.conns {
		nc.Close()
	}
}

func poll(within time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// tracker follows every job event of a deployment and timestamps, per
// job, the moments the benchmarks measure between.
type tracker struct {
	mu   sync.Mutex
	jobs map[string]*jobTimes
	sub  *nats.Subscription
	// done is called once per job reaching a terminal state.
	done func(id string, jt *jobTimes)
	// online is called for each worker's first worker_online event.
	online func(id string, jt *jobTimes)
	// offlines counts worker_offline events of every job; recreated the
	// worker_online events of incarnations beyond the first (epoch > 1):
	// workers their master gave up on and created again.
	offlines, recreated int
}

type jobTimes struct {
	submit, running, online, ready, end time.Time
	state                               api.State
	// onlines counts the distinct workers that came online: a worker
	// re-announced by a recovered master, or re-created, counts once.
	onlines int
	workers map[string]struct{}
	// masterEpoch is the highest master epoch of the job's events: above
	// 1, the master failed over.
	masterEpoch uint64
	// offlines counts the job's worker_offline events.
	offlines   int
	lastOnline time.Time
	detail     json.RawMessage
	errMsg     string
}

func newTracker(nc *nats.Conn, space topics.Space) (*tracker, error) {
	t := &tracker{jobs: map[string]*jobTimes{}}
	sub, err := nc.Subscribe(space.JobEventsPattern(), t.onEvent)
	if err != nil {
		return nil, err
	}
	sub.SetPendingLimits(-1, -1)
	t.sub = sub
	return t, nc.Flush()
}

func (t *tracker) stop() { _ = t.sub.Unsubscribe() }

// expect registers a job before it is submitted, so no event is missed.
func (t *tracker) expect(id string) *jobTimes {
	t.mu.Lock()
	defer t.mu.Unlock()
	jt := &jobTimes{submit: time.Now()}
	t.jobs[id] = jt
	return jt
}

func (t *tracker) onEvent(m *nats.Msg) {
	now := time.Now()
	var ev api.Event
	if json.Unmarshal(m.Data, &ev) != nil {
		return
	}
	t.mu.Lock()
	jt := t.jobs[ev.Job]
	if jt == nil {
		t.mu.Unlock()
		return
	}
	var done, online bool
	jt.masterEpoch = max(jt.masterEpoch, ev.Epoch)
	switch ev.Kind {
	case api.EventState:
		if ev.State == api.StateRunning && jt.running.IsZero() {
			jt.running = now
		}
		if ev.State.Terminal() && jt.end.IsZero() {
			jt.end, jt.state, jt.detail = now, ev.State, ev.Detail
			if ev.Error != nil {
				jt.errMsg = ev.Error.Message
			}
			done = true
		}
	case api.EventWorkerOnline:
		if jt.online.IsZero() {
			jt.online = now
		}
		if jt.workers == nil {
			jt.workers = map[string]struct{}{}
		}
		if _, seen := jt.workers[ev.Worker]; !seen {
			jt.workers[ev.Worker] = struct{}{}
			jt.onlines++
			jt.lastOnline = now
			online = true
		}
		if ev.WorkerEpoch > 1 {
			t.recreated++
		}
	case api.EventWorkerOffline:
		t.offlines++
		jt.offlines++
	case api.EventMasterReady:
		if jt.ready.IsZero() {
			jt.ready = now
		}
	}
	onDone, onOnline := t.done, t.online
	t.mu.Unlock()
	if done && onDone != nil {
		onDone(ev.Job, jt)
	}
	if online && onOnline != nil {
		onOnline(ev.Job, jt)
	}
}

func (t *tracker) setDone(f func(string, *jobTimes)) {
	t.mu.Lock()
	t.done = f
	t.mu.Unlock()
}

func (t *tracker) setOnline(f func(string, *jobTimes)) {
	t.mu.Lock()
	t.online = f
	t.mu.Unlock()
}

func (t *tracker) offlineCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.offlines
}

func (t *tracker) recreatedCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recreated
}

// count returns how many of the tracked jobs satisfy f.
func (t *tracker) count(f func(*jobTimes) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, jt := range t.jobs {
		if f(jt) {
			n++
		}
	}
	return n
}

var errTimeout = errors.New("timed out")
