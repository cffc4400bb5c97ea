package jobmanager_test

// Operator-facing behaviour: the live events of a job, the log fields of
// every line about a job, the metrics of every service, as an operator
// sees them during real runs (a failover, a restart, a forced cancel).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
)

// eventLog records what `nats sub drover.events.jobs.<id>` would print.
type eventLog struct {
	mu  sync.Mutex
	evs []api.Event
}

// watchEvents subscribes to a job's event subject (before the job exists,
// so nothing is missed).
func watchEvents(t *testing.T, sys *testsys.System, id string) *eventLog {
	t.Helper()
	subj, err := sys.Client.Space().JobEvents(id)
	if err != nil {
		t.Fatal(err)
	}
	l := &eventLog{}
	sub, err := sys.Client.Conn().Subscribe(subj, func(m *nats.Msg) {
		var ev api.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Errorf("malformed event %s: %v", m.Data, err)
			return
		}
		l.mu.Lock()
		l.evs = append(l.evs, ev)
		l.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := sys.Client.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *eventLog) all() []api.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]api.Event(nil), l.evs...)
}

// count returns how many events match.
func (l *eventLog) count(match func(api.Event) bool) int {
	n := 0
	for _, ev := range l.all() {
		if match(ev) {
			n++
		}
	}
	return n
}

func (l *eventLog) wait(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; events:\n%s", what, l.dump())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *eventLog) dump() string {
	var b strings.Builder
	for _, ev := range l.all() {
		fmt.Fprintf(&b, "  %s state=%s epoch=%d node=%s worker=%s@%d reason=%s error=%v\n",
			ev.Kind, ev.State, ev.Epoch, ev.Node, ev.Worker, ev.WorkerEpoch, ev.Reason, ev.Error)
	}
	return b.String()
}

func stateEvent(state api.State, reason string) func(api.Event) bool {
	return func(ev api.Event) bool {
		return ev.Kind == api.EventState && ev.State == state && ev.Reason == reason
	}
}

// metricValue sums the value (counter, gauge) or sample count (histogram)
// of every series of name whose labels include want.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				total += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				total += m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				total += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return total
}

// lint fails the test on any exposition problem of a registry.
func lint(t *testing.T, name string, reg prometheus.Gatherer) {
	t.Helper()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatalf("%s: gather: %v", name, err)
	}
	for _, p := range problems {
		t.Errorf("%s: metric %s: %s", name, p.Metric, p.Text)
	}
}

// TestFailoverIsVisibleInEventsLogsAndMetrics runs a counter job, cuts its
// job-master node off NATS mid-run (as kill -9 would), and reads the
// failover the three ways docs/operations.md describes: the job's event
// stream, the log lines about the job, and the metrics of each service.
func TestFailoverIsVisibleInEventsLogsAndMetrics(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	core, logs := observer.New(zapcore.DebugLevel)
	sys.Log = zap.New(core)
	jm := sys.AddJobManager("jm")
	sys.AddJobMaster("m0")
	sys.AddJobMaster("m1")
	sys.AddWorker("w0")
	sys.AddWorker("w1")
	sys.WaitReady(2, 2)
	ctx := context.Background()

	const id = "fo1"
	events := watchEvents(t, sys, id)
	// The workers count for longer than a failover takes (a master timeout
	// and an assignment, thrice), so they are still running when the new
	// master recovers them.
	const interval = 10 * time.Millisecond
	target := int(3 * (sys.Timing.MasterTimeout + sys.Timing.AssignTimeout) / interval)
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: id, Type: "counter",
		Config: json.RawMessage(fmt.Sprintf(`{"workers":2,"target":%d,"interval_ms":%d}`, target, interval.Milliseconds()))}); err != nil {
		t.Fatal(err)
	}
	// The node that runs the master is the one the running event names:
	// the leader records the assignment after the node accepted it, so the
	// master (and its workers) may start before the job record says where.
	within := 10 * (sys.Timing.AssignTimeout + sys.Timing.MasterTimeout)
	var first string
	events.wait(t, within, "running at epoch 1 and both workers online", func() bool {
		for _, ev := range events.all() {
			if stateEvent(api.StateRunning, "assigned")(ev) && ev.Epoch == 1 {
				first = ev.Node
			}
		}
		return first != "" && events.count(func(ev api.Event) bool { return ev.Kind == api.EventWorkerOnline && ev.Epoch == 1 }) == 2
	})
	other := map[string]string{"m0": "m1", "m1": "m0"}[first]
	jmRegistry := jm.Registry
	survivor := sys.Proc(other)
	sys.Crash(first)

	done, err := sys.WaitJob(id, 2*within)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != api.StateFinished || done.Epoch != 2 || done.Node != other {
		t.Fatalf("job ended %s at epoch %d on %s, want finished at epoch 2 on %s", done.State, done.Epoch, done.Node, other)
	}
	events.wait(t, within, "the finished event", func() bool {
		return events.count(stateEvent(api.StateFinished, "master_finished")) == 1
	})

	// Events: every state change, the move with its reason, every worker
	// online and offline, each with its epoch.
	evs := events.all()
	if evs[0].Kind != api.EventState || evs[0].State != api.StateCreated || evs[0].Reason != "submitted" {
		t.Errorf("first event %+v, want state created (submitted)", evs[0])
	}
	want := []struct {
		what  string
		n     int
		match func(api.Event) bool
	}{
		{"running at epoch 1 on the first node", 1, func(ev api.Event) bool {
			return stateEvent(api.StateRunning, "assigned")(ev) && ev.Epoch == 1 && ev.Node == first
		}},
		{"master moved to the other node at epoch 2 for timeout", 1, func(ev api.Event) bool {
			return ev.Kind == api.EventMasterMoved && ev.Epoch == 2 && ev.Node == other && ev.Reason == "timeout" && ev.State == api.StateRunning
		}},
		{"master ready at epoch 2", 1, func(ev api.Event) bool { return ev.Kind == api.EventMasterReady && ev.Epoch == 2 && ev.Node == other }},
		{"workers re-attached to epoch 2, same incarnations", 2, func(ev api.Event) bool {
			return ev.Kind == api.EventWorkerOnline && ev.Epoch == 2 && ev.WorkerEpoch == 1 && strings.HasPrefix(ev.Node, "w")
		}},
		{"workers finished under epoch 2", 2, func(ev api.Event) bool {
			return ev.Kind == api.EventWorkerOffline && ev.Epoch == 2 && ev.Reason == "finished" && ev.Worker != ""
		}},
		{"finished with the detail", 1, func(ev api.Event) bool {
			return stateEvent(api.StateFinished, "master_finished")(ev) && ev.Epoch == 2 && strings.Contains(string(ev.Detail), fmt.Sprintf(`"total":%d`, 2*target))
		}},
	}
	for _, w := range want {
		if got := events.count(w.match); got != w.n {
			t.Errorf("%d events for %q, want %d; events:\n%s", got, w.what, w.n, events.dump())
		}
	}

	// Logs: every line about the job carries job_id, epoch and node, and
	// worker_id where a worker is concerned; the failover reads in order.
	var about []observer.LoggedEntry
	for _, e := range logs.All() {
		f := e.ContextMap()
		if f["job_id"] != id {
			continue
		}
		about = append(about, e)
		for _, k := range []string{"epoch", "node"} {
			if _, ok := f[k]; !ok {
				t.Errorf("log line %q about job %s has no %s: %v", e.Message, id, k, f)
			}
		}
		if strings.HasPrefix(e.Message, "worker ") || strings.HasPrefix(e.Message, "counter ") {
			if _, ok := f["worker_id"]; !ok {
				t.Errorf("worker log line %q has no worker_id: %v", e.Message, f)
			}
		}
	}
	line := func(msg string, fields map[string]any) bool {
		for _, e := range about {
			if e.Message != msg {
				continue
			}
			f, ok := e.ContextMap(), true
			for k, v := range fields {
				ok = ok && fmt.Sprint(f[k]) == fmt.Sprint(v)
			}
			if ok {
				return true
			}
		}
		return false
	}
	for _, l := range []struct {
		msg    string
		fields map[string]any
	}{
		{"job submitted", map[string]any{"epoch": 0}},
		{"master assigned", map[string]any{"epoch": 1, "node": first, "reason": "first"}},
		{"master initializing", map[string]any{"epoch": 1, "node": first}},
		{"master lost, failing over", map[string]any{"epoch": 1, "node": first, "reason": "timeout"}},
		{"master assigned", map[string]any{"epoch": 2, "node": other, "reason": "timeout"}},
		{"master recovering", map[string]any{"epoch": 2, "node": other}},
		{"worker follows new master", map[string]any{"epoch": 2, "previous_epoch": 1}},
		{"worker exited", map[string]any{"epoch": 2, "reason": "finished", "worker_epoch": 1}},
		{"master exited", map[string]any{"epoch": 2, "node": other, "master_state": "finished"}},
	} {
		if !line(l.msg, l.fields) {
			t.Errorf("no log line %q with %v about job %s", l.msg, l.fields, id)
		}
	}

	// Metrics: the move is counted by the leader, the recovery by the
	// node that took over; the exposition of each service lints clean.
	for _, m := range []struct {
		reg    prometheus.Gatherer
		name   string
		labels map[string]string
		want   float64
	}{
		{jmRegistry, "drover_jobmanager_master_failovers_total", map[string]string{"reason": "timeout"}, 1},
		{jmRegistry, "drover_jobmanager_master_assignments_total", map[string]string{"reason": "first"}, 1},
		{jmRegistry, "drover_jobmanager_master_assignments_total", map[string]string{"reason": "timeout"}, 1},
		{jmRegistry, "drover_jobmanager_schedule_seconds", nil, 1},
		{survivor.Registry, "drover_runtime_master_recoveries_total", nil, 1},
		{survivor.Registry, "drover_runtime_worker_offlines_total", map[string]string{"reason": "finished"}, 2},
	} {
		if got := metricValue(t, m.reg, m.name, m.labels); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	lint(t, "job manager", jmRegistry)
	lint(t, "job-master node", survivor.Registry)
}

// TestEventsOfRestartAndCancels checks the events (and counters) of the
// other ways a job moves: a failed master restarted by the policy, a
// cancel the master carries out, and a cancel the leader has to force.
func TestEventsOfRestartAndCancels(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	jm := sys.AddJobManager("jm")
	sys.AddJobMaster("m0")
	sys.AddWorker("w0")
	sys.WaitReady(1, 1)
	ctx := context.Background()

	t.Run("restart", func(t *testing.T) {
		events := watchEvents(t, sys, "flaky1")
		if _, err := sys.Client.Submit(ctx, api.Spec{ID: "flaky1", Type: "flaky",
			Config: json.RawMessage(`{"fail_times":1,"run_ms":100}`)}); err != nil {
			t.Fatal(err)
		}
		events.wait(t, 20*time.Second, "finished", func() bool {
			return events.count(stateEvent(api.StateFinished, "master_finished")) == 1
		})
		pending := events.count(func(ev api.Event) bool {
			return stateEvent(api.StatePending, "master_failed")(ev) && ev.Epoch == 1 && ev.Error != nil
		})
		restarted := events.count(func(ev api.Event) bool {
			return stateEvent(api.StateRunning, "restart")(ev) && ev.Epoch == 2
		})
		if pending != 1 || restarted != 1 {
			t.Errorf("pending(master_failed)@1 ×%d, running(restart)@2 ×%d, want 1 each; events:\n%s", pending, restarted, events.dump())
		}
		if got := metricValue(t, jm.Registry, "drover_jobmanager_master_restarts_total", nil); got != 1 {
			t.Errorf("master_restarts_total = %v, want 1", got)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		events := watchEvents(t, sys, "cancel1")
		if _, err := sys.Client.Submit(ctx, api.Spec{ID: "cancel1", Type: "counter",
			Config: json.RawMessage(`{"workers":1,"target":100000,"interval_ms":5}`)}); err != nil {
			t.Fatal(err)
		}
		events.wait(t, 10*time.Second, "worker online", func() bool {
			return events.count(func(ev api.Event) bool { return ev.Kind == api.EventWorkerOnline }) == 1
		})
		if _, err := sys.Client.Cancel(ctx, "cancel1"); err != nil {
			t.Fatal(err)
		}
		events.wait(t, 10*time.Second, "canceled by the master", func() bool {
			return events.count(stateEvent(api.StateCanceled, "master_canceled")) == 1
		})
		if n := events.count(stateEvent(api.StateCanceling, "cancel_requested")); n != 1 {
			t.Errorf("%d canceling events, want 1; events:\n%s", n, events.dump())
		}
		events.wait(t, 5*time.Second, "the worker reported offline", func() bool {
			return events.count(func(ev api.Event) bool {
				return ev.Kind == api.EventWorkerOffline && ev.Reason == "job_ended" && ev.Worker == "w0"
			}) == 1
		})
	})

	t.Run("cancel before start", func(t *testing.T) {
		events := watchEvents(t, sys, "early1")
		if _, err := sys.Client.Submit(ctx, api.Spec{ID: "early1", Type: "counter",
			Selectors: map[string]string{"zone": "nowhere"}}); err != nil {
			t.Fatal(err)
		}
		events.wait(t, 5*time.Second, "pending for want of a node", func() bool {
			return events.count(stateEvent(api.StatePending, "no_capacity")) == 1
		})
		if _, err := sys.Client.Cancel(ctx, "early1"); err != nil {
			t.Fatal(err)
		}
		events.wait(t, 5*time.Second, "canceled at once", func() bool {
			return events.count(stateEvent(api.StateCanceled, "cancel_requested")) == 1
		})
	})

	t.Run("forced cancel", func(t *testing.T) {
		events := watchEvents(t, sys, "stubborn1")
		if _, err := sys.Client.Submit(ctx, api.Spec{ID: "stubborn1", Type: "stubborn",
			Config: json.RawMessage(`{"workers":1}`)}); err != nil {
			t.Fatal(err)
		}
		events.wait(t, 10*time.Second, "worker online", func() bool {
			return events.count(func(ev api.Event) bool { return ev.Kind == api.EventWorkerOnline }) == 1
		})
		if _, err := sys.Client.Cancel(ctx, "stubborn1"); err != nil {
			t.Fatal(err)
		}
		// The master ignores OnCancel: the leader ends it after cancel_timeout
		// with a new epoch that fences it.
		events.wait(t, 15*time.Second, "canceled by force", func() bool {
			return events.count(func(ev api.Event) bool {
				return stateEvent(api.StateCanceled, "forced")(ev) && ev.Epoch == 2
			}) == 1
		})
		if got := metricValue(t, jm.Registry, "drover_jobmanager_forced_cancels_total", nil); got != 1 {
			t.Errorf("forced_cancels_total = %v, want 1", got)
		}
	})
}

// TestMetricsOfEveryServiceLintAndMove runs a job and checks that each
// service's exposition lints clean and that the series an operator watches
// moved: jobs by state, submissions and rejections, scheduling latency,
// worker lifecycle, heartbeats and KV operations.
func TestMetricsOfEveryServiceLintAndMove(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	jm := sys.AddJobManager("jm")
	m0 := sys.AddJobMaster("m0")
	w0 := sys.AddWorker("w0")
	sys.WaitReady(1, 1)
	ctx := context.Background()
	j, err := sys.Client.Submit(ctx, api.Spec{Type: "counter", Config: json.RawMessage(`{"workers":2,"target":20,"interval_ms":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Client.Submit(ctx, api.Spec{Type: "nope"}); api.ErrorCode(err) != api.CodeUnknownType {
		t.Fatalf("unknown type: %v", err)
	}
	if done, err := sys.WaitJob(j.ID, 30*time.Second); err != nil || done.State != api.StateFinished {
		t.Fatalf("job: %+v %v", done, err)
	}
	// The leader refreshes the jobs gauge every second.
	natstest.Eventually(t, 5*time.Second, "jobs{state=finished} = 1", func() bool {
		return metricValue(t, jm.Registry, "drover_jobmanager_jobs", map[string]string{"state": "finished"}) == 1
	})
	for _, m := range []struct {
		proc   string
		reg    prometheus.Gatherer
		name   string
		labels map[string]string
		min    float64
	}{
		{"jm", jm.Registry, "drover_jobmanager_submissions_total", nil, 1},
		{"jm", jm.Registry, "drover_jobmanager_rejections_total", map[string]string{"path": "request", "code": "unknown_type"}, 1},
		{"jm", jm.Registry, "drover_jobmanager_api_requests_total", map[string]string{"op": "jobs.submit", "code": "ok"}, 1},
		{"jm", jm.Registry, "drover_jobmanager_master_assignments_total", map[string]string{"reason": "first"}, 1},
		{"jm", jm.Registry, "drover_jobmanager_schedule_seconds", nil, 1},
		{"jm", jm.Registry, "drover_jobmanager_is_leader", nil, 1},
		{"jm", jm.Registry, "drover_jobmanager_leader_changes_total", nil, 1},
		{"jm", jm.Registry, "drover_kv_operation_seconds", map[string]string{"op": "create_job"}, 1},
		{"jm", jm.Registry, "drover_kv_operation_seconds", map[string]string{"op": "advance_epoch"}, 1},
		{"m0", m0.Registry, "drover_runtime_worker_creations_total", nil, 2},
		{"m0", m0.Registry, "drover_runtime_worker_onlines_total", nil, 2},
		{"m0", m0.Registry, "drover_runtime_worker_offlines_total", map[string]string{"reason": "finished"}, 2},
		{"m0", m0.Registry, "drover_runtime_first_worker_online_seconds", nil, 1},
		{"m0", m0.Registry, "drover_runtime_heartbeats_received_total", nil, 1},
		{"m0", m0.Registry, "drover_kv_operation_seconds", map[string]string{"op": "put_master"}, 2},
		{"m0", m0.Registry, "drover_kv_operation_seconds", map[string]string{"op": "put_worker_as_master"}, 2},
		{"w0", w0.Registry, "drover_runtime_heartbeats_sent_total", nil, 2},
		{"w0", w0.Registry, "drover_kv_operation_seconds", map[string]string{"op": "business_put"}, 40},
		{"w0", w0.Registry, "drover_kv_operation_seconds", map[string]string{"op": "put_node"}, 1},
	} {
		if got := metricValue(t, m.reg, m.name, m.labels); got < m.min {
			t.Errorf("%s: %s%v = %v, want at least %v", m.proc, m.name, m.labels, got, m.min)
		}
	}
	for _, m := range []struct {
		proc string
		reg  prometheus.Gatherer
	}{{"jm", jm.Registry}, {"m0", m0.Registry}, {"w0", w0.Registry}} {
		lint(t, m.proc, m.reg)
		if got := metricValue(t, m.reg, "drover_kv_operation_failures_total", nil); got != 0 {
			t.Errorf("%s: %v KV failures in a healthy run: %v", m.proc, got, series(t, m.reg, "drover_kv_operation_failures_total"))
		}
	}
}

// TestHandoverEvent stops a job-master node gracefully (its SIGTERM path):
// the master moves at once, and the event and the counter say handover.
func TestHandoverEvent(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	jm := sys.AddJobManager("jm")
	sys.AddJobMaster("m0")
	sys.AddJobMaster("m1")
	sys.AddWorker("w0")
	sys.WaitReady(2, 1)
	events := watchEvents(t, sys, "ho1")
	if _, err := sys.Client.Submit(context.Background(), api.Spec{ID: "ho1", Type: "counter",
		Config: json.RawMessage(`{"workers":1,"target":100000,"interval_ms":5}`)}); err != nil {
		t.Fatal(err)
	}
	// The master's node is the running event's (the job record trails
	// the master's start: see TestFailoverIsVisibleInEventsLogsAndMetrics).
	within := 10 * (sys.Timing.AssignTimeout + sys.Timing.MasterTimeout)
	var first string
	events.wait(t, within, "running at epoch 1 and the worker online", func() bool {
		for _, ev := range events.all() {
			if stateEvent(api.StateRunning, "assigned")(ev) && ev.Epoch == 1 {
				first = ev.Node
			}
		}
		return first != "" && events.count(func(ev api.Event) bool { return ev.Kind == api.EventWorkerOnline }) == 1
	})
	sys.Stop(first)
	events.wait(t, within, "master moved for handover", func() bool {
		return events.count(func(ev api.Event) bool {
			return ev.Kind == api.EventMasterMoved && ev.Reason == "handover" && ev.Epoch == 2 && ev.Node != first
		}) == 1
	})
	if got := metricValue(t, jm.Registry, "drover_jobmanager_master_failovers_total", map[string]string{"reason": "handover"}); got != 1 {
		t.Errorf("failovers_total{handover} = %v, want 1", got)
	}
}

// series lists the label sets and values of a metric's series.
func series(t *testing.T, reg prometheus.Gatherer, name string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			out = append(out, fmt.Sprintf("{%s} %v", strings.Join(ls, ","), m.GetCounter().GetValue()))
		}
	}
	return out
}
