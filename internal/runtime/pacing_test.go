package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/runtime"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/jobs/counter"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/topics"
	"github.com/drover-run/drover/services/jobmaster"
	"github.com/drover-run/drover/services/worker"
)

func counterSystem(t *testing.T) (*testsys.System, *observer.ObservedLogs) {
	reg := framework.NewRegistry()
	reg.MustRegister(counter.Type())
	sys := testsys.Start(t, reg)
	core, logs := observer.New(zap.InfoLevel)
	sys.Log = zap.New(core)
	return sys, logs
}

// oneOfEach is counterSystem with a job manager, a job-master node (m1)
// and a worker node (w1), ready.
func oneOfEach(t *testing.T) *testsys.System {
	sys, _ := counterSystem(t)
	sys.AddJobManager("jm")
	sys.AddJobMaster("m1")
	sys.AddWorker("w1")
	sys.WaitReady(1, 1)
	return sys
}

// jobEvents returns every event of job id so far.
func jobEvents(t *testing.T, sys *testsys.System, id string) []api.StreamEvent {
	t.Helper()
	var out []api.StreamEvent
	var since uint64
	for {
		evs, next, err := sys.Client.Events(context.Background(), api.EventsRequest{ID: id, SinceSeq: since})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
		if len(evs) == 0 || next == since {
			return out
		}
		since = next
	}
}

// workerStates returns job id's workers by state, and the highest epoch.
func workerStates(t *testing.T, sys *testsys.System, id string) (map[string]int, uint64) {
	t.Helper()
	ws, err := sys.Client.Workers(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	states, top := map[string]int{}, uint64(0)
	for _, w := range ws {
		states[w.State]++
		top = max(top, w.Epoch)
	}
	return states, top
}

func submitCounter(t *testing.T, sys *testsys.System, id string, workers int) {
	t.Helper()
	cfg, _ := json.Marshal(counter.Config{Workers: workers, Target: counter.MaxTarget, IntervalMS: 50})
	if _, err := sys.Client.Submit(context.Background(), api.Spec{ID: id, Type: counter.Name, Config: cfg}); err != nil {
		t.Fatal(err)
	}
}

// TestWorkersBeyondCapacityWaitQuietly submits a job asking for more
// workers than the deployment can place, next to a running neighbour:
// the ones left over wait (visible as waiting, one event each however
// many retries), the log stays quiet, the neighbour is untouched, and
// once capacity frees the waiting workers are placed, first incarnation.
// Before the runtime owned the wait, every missing worker failed its
// dispatch on each 100 ms tick: an event and a WARN line each time.
func TestWorkersBeyondCapacityWaitQuietly(t *testing.T) {
	sys, logs := counterSystem(t)
	const backoff, backoffMax = 50 * time.Millisecond, 200 * time.Millisecond
	sys.AddJobManager("jm")
	sys.AddJobMasterWith("m1", func(c *jobmaster.Config) {
		c.PlacementBackoff, c.PlacementBackoffMax = backoff, backoffMax
	})
	sys.AddWorkerWith("w1", func(c *worker.Config) { c.Capacity = 6 })
	sys.WaitReady(1, 1)

	submitCounter(t, sys, "neighbour", 4)
	natstest.Eventually(t, 20*time.Second, "the neighbour's four workers online", func() bool {
		s, _ := workerStates(t, sys, "neighbour")
		return s["online"] == 4
	})
	submitCounter(t, sys, "big", 6)
	natstest.Eventually(t, 20*time.Second, "two of big's workers online, four waiting", func() bool {
		s, _ := workerStates(t, sys, "big")
		return s["online"] == 2 && s["waiting"] == 4
	})
	// Ten backoff steps at the largest: without a wait owned by the
	// runtime, each would have failed and reported every missing worker.
	time.Sleep(10 * backoffMax)

	kinds := map[string]int{}
	for _, e := range jobEvents(t, sys, "big") {
		kinds[e.Kind]++
	}
	// One worker_waiting per waiting worker, and one more for each
	// creation a full node refused (the placer's view of its load lags):
	// a few, not one per retry.
	if w := kinds[api.EventWorkerWaiting]; w < 4 || w > 8 || kinds[api.EventWorkerOffline] != 0 {
		t.Errorf("big's events %v: want 4 to 8 worker_waiting and no worker_offline", kinds)
	}
	if n := logs.FilterField(zap.String("job_id", "big")).Len(); n > 12 {
		t.Errorf("big wrote %d log lines while waiting; want a few (one per waiting worker at most)", n)
		for _, e := range logs.FilterField(zap.String("job_id", "big")).All()[:12] {
			t.Log(e.Message)
		}
	}
	if s, top := workerStates(t, sys, "neighbour"); s["online"] != 4 || top != 1 {
		t.Errorf("neighbour workers %v, highest epoch %d: want all four online at epoch 1", s, top)
	}

	if _, err := sys.Client.Cancel(context.Background(), "neighbour"); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 20*time.Second, "big's waiting workers placed once the neighbour ended", func() bool {
		s, _ := workerStates(t, sys, "big")
		return s["online"] == 6
	})
	if _, top := workerStates(t, sys, "big"); top != 1 {
		t.Errorf("big's workers reached epoch %d: waiting must not re-create", top)
	}
}

// TestManyLateWorkersWidenPatience has a master miss every heartbeat for
// a while, as one whose inbox overflowed would: all its workers are late
// at once. It reads that as its own overload: none is declared lost at
// the worker timeout; only at the widened one, and each is then
// re-created through a backoff (at most MaxRecreations in flight), once.
func TestManyLateWorkersWidenPatience(t *testing.T) {
	sys, _ := counterSystem(t)
	timeout := sys.Timing.WorkerTimeout
	sys.AddJobManager("jm")
	sys.AddJobMasterWith("m1", func(c *jobmaster.Config) {
		c.WorkerLateBurst, c.MaxRecreations, c.WorkerTimeoutMax = 5, 2, 2*timeout
		c.PlacementBackoff, c.PlacementBackoffMax = 100*time.Millisecond, time.Second
	})
	sys.AddWorker("w1")
	sys.WaitReady(1, 1)
	const n = 10
	submitCounter(t, sys, "late", n)
	natstest.Eventually(t, 20*time.Second, "ten workers online", func() bool {
		s, _ := workerStates(t, sys, "late")
		return s["online"] == n
	})

	dropped := time.Now()
	restore := runtime.DropHeartbeats()
	// Long enough for every worker to be late (and, unacknowledged, to
	// fence itself), short of the widened timeout.
	time.Sleep(timeout + timeout/2)
	restore()

	natstest.Eventually(t, 10*timeout, "every worker re-created and online", func() bool {
		ws, err := sys.Client.Workers(context.Background(), "late")
		if err != nil {
			t.Fatal(err)
		}
		online := 0
		for _, w := range ws {
			if w.State == "online" && w.Epoch == 2 {
				online++
			}
		}
		return online == n
	})
	recreated := map[string]bool{}
	for _, e := range jobEvents(t, sys, "late") {
		switch {
		case e.Kind == api.EventWorkerOffline && e.Reason == framework.OfflineTimeout:
			if at := e.Time.Sub(dropped); at < 2*timeout {
				t.Errorf("worker %s declared lost %s after heartbeats stopped: before the widened timeout %s",
					e.Worker, at.Round(time.Millisecond), 2*timeout)
			}
		case e.Kind == api.EventWorkerWaiting && e.Reason == runtime.WaitRecreate:
			recreated[e.Worker] = true
		}
	}
	if len(recreated) != n {
		t.Errorf("%d workers re-created through a backoff, want %d", len(recreated), n)
	}
	if _, top := workerStates(t, sys, "late"); top != 2 {
		t.Errorf("highest worker epoch %d, want 2: each worker re-created once", top)
	}
}

// TestHeartbeatsHaveTheirOwnSubject checks that workers' heartbeats reach
// their master on a subject of their own, never on the inbox that carries
// status and exit messages: a flood of those cannot delay a heartbeat. A
// node's workers of one job heartbeat in one message, an entry each.
func TestHeartbeatsHaveTheirOwnSubject(t *testing.T) {
	sys := oneOfEach(t)
	nc, _ := natstest.Connect(t, sys.Server)
	sp := topics.MustNew(topics.DefaultPrefix)
	var most atomic.Int64 // the most entries in one message
	count := func(subj string) *atomic.Int64 {
		var n atomic.Int64
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
			var b wire.HeartbeatBatch
			if wire.Kind(m) == wire.KindHeartbeat && json.Unmarshal(m.Data, &b) == nil {
				n.Add(int64(len(b.Workers)))
				if int64(len(b.Workers)) > most.Load() {
					most.Store(int64(len(b.Workers)))
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
		return &n
	}
	hbSubj, _ := sp.MasterHeartbeats("hb")
	inbox, _ := sp.MasterInbox("hb")
	onHB, onInbox := count(hbSubj), count(inbox)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	submitCounter(t, sys, "hb", 2)
	natstest.Eventually(t, 20*time.Second, "both workers online, heartbeats on their subject, both in one message", func() bool {
		s, _ := workerStates(t, sys, "hb")
		return s["online"] == 2 && onHB.Load() >= 4 && most.Load() >= 2
	})
	if n := onInbox.Load(); n != 0 {
		t.Errorf("%d heartbeats on the master's inbox, want none", n)
	}
	if n := most.Load(); n != 2 {
		t.Errorf("%d heartbeats in one message, want at most the node's 2 workers", n)
	}
}

// TestHeartbeatBatchesAreCheckedEntryByEntry sends a master forged
// heartbeat messages: it acknowledges, in one answer, exactly the entries
// of incarnations it runs, tells an incarnation it does not run to stop
// (a bounded number of them per message), and answers nothing to a batch
// of another job or one longer than any node sends.
func TestHeartbeatBatchesAreCheckedEntryByEntry(t *testing.T) {
	sys := oneOfEach(t)
	submitCounter(t, sys, "batch", 2)
	natstest.Eventually(t, 20*time.Second, "both workers online", func() bool {
		s, _ := workerStates(t, sys, "batch")
		return s["online"] == 2
	})
	ws, err := sys.Client.Workers(context.Background(), "batch")
	if err != nil {
		t.Fatal(err)
	}
	nc, _ := natstest.Connect(t, sys.Server)
	sp := topics.MustNew(topics.DefaultPrefix)
	hbSubj, _ := sp.MasterHeartbeats("batch")
	stopSubj, _ := sp.WorkerInbox("batch", "ghost")
	stops, err := nc.SubscribeSync(stopSubj)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(b wire.HeartbeatBatch) (*wire.HeartbeatBatch, error) {
		msg := wire.NewMsg(hbSubj, wire.KindHeartbeat, 0, wire.Marshal(b))
		resp, err := nc.RequestMsg(msg, 2*time.Second)
		if err != nil {
			return nil, err
		}
		var acks wire.HeartbeatBatch
		if wire.Kind(resp) != wire.KindAck || json.Unmarshal(resp.Data, &acks) != nil {
			t.Fatalf("answer %q of kind %q is no acknowledgement", resp.Data, wire.Kind(resp))
		}
		return &acks, nil
	}
	live := wire.Heartbeat{Worker: ws[0].ID, Epoch: ws[0].Epoch, Master: 1}
	acks, err := ask(wire.HeartbeatBatch{Job: "batch", Workers: []wire.Heartbeat{
		live,
		{Worker: ws[1].ID, Epoch: ws[1].Epoch + 1, Master: 1}, // an incarnation never created
		{Worker: "ghost", Epoch: 1, Master: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(acks.Workers) != 1 || acks.Workers[0].Worker != live.Worker || acks.Workers[0].Epoch != live.Epoch || acks.Job != "batch" {
		t.Errorf("acknowledged %+v, want only %s incarnation %d", acks, live.Worker, live.Epoch)
	}
	if m, err := stops.NextMsg(5 * time.Second); err != nil || wire.Kind(m) != wire.KindStop {
		t.Errorf("the unknown worker was not told to stop: %v", err)
	}
	// A batch of a hundred unknown workers makes a bounded number of stops.
	anyStop, err := nc.SubscribeSync(strings.TrimSuffix(stopSubj, "ghost") + "*")
	if err != nil {
		t.Fatal(err)
	}
	ghosts := wire.HeartbeatBatch{Job: "batch"}
	for i := range 100 {
		ghosts.Workers = append(ghosts.Workers, wire.Heartbeat{Worker: fmt.Sprintf("ghost%d", i), Epoch: 1, Master: 1})
	}
	if err := nc.PublishMsg(wire.NewMsg(hbSubj, wire.KindHeartbeat, 0, wire.Marshal(ghosts))); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := anyStop.NextMsg(2 * time.Second); err != nil {
			break
		}
		n++
	}
	if n != runtime.MaxStopsPerBatch {
		t.Errorf("a batch of 100 unknown workers made %d stop messages, want %d", n, runtime.MaxStopsPerBatch)
	}
	for what, b := range map[string]wire.HeartbeatBatch{
		"another job's batch": {Job: "other", Workers: []wire.Heartbeat{live}},
		"an oversized batch":  {Job: "batch", Workers: slices.Repeat([]wire.Heartbeat{live}, wire.MaxHeartbeatBatch+1)},
	} {
		if acks, err := ask(b); err == nil {
			t.Errorf("%s was answered: %+v", what, acks)
		}
	}
	if s, top := workerStates(t, sys, "batch"); s["online"] != 2 || top != 1 {
		t.Errorf("workers %v (highest epoch %d) after the forged heartbeats, want both online at epoch 1", s, top)
	}
}

// TestAJobsBroadcastIsOneSubscriptionPerNode runs twenty workers of a job
// on one node: the job's broadcast subject has one subscriber, the node,
// which hands each broadcast to every worker: the job's end, broadcast
// (here by the test), stops all twenty, and the subscription ends with
// the last of them.
func TestAJobsBroadcastIsOneSubscriptionPerNode(t *testing.T) {
	sys := oneOfEach(t)
	const workers = 20
	submitCounter(t, sys, "fan", workers)
	natstest.Eventually(t, 20*time.Second, "every worker online", func() bool {
		s, _ := workerStates(t, sys, "fan")
		return s["online"] == workers
	})
	bcast, _ := topics.MustNew(topics.DefaultPrefix).WorkersBroadcast("fan")
	subs := func() int {
		sz, err := sys.Server.Subsz(&server.SubszOptions{Subscriptions: true, Test: bcast})
		if err != nil {
			t.Fatal(err)
		}
		return len(sz.Subs)
	}
	if n := subs(); n != 1 {
		t.Errorf("%d subscriptions to the job's broadcast with %d workers on one node, want 1", n, workers)
	}
	nc, _ := natstest.Connect(t, sys.Server)
	if err := nc.PublishMsg(wire.NewMsg(bcast, wire.KindJobEnded, 1, nil)); err != nil {
		t.Fatal(err)
	}
	// Before the master could notice the silence and create them again.
	natstest.Eventually(t, sys.Timing.WorkerTimeout, "every worker stopped, the subscription gone", func() bool {
		return subs() == 0
	})
}
