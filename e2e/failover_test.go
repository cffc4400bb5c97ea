package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/pkg/api"
)

// TestMasterFailoverKill9: kill -9 of the job-master node running a job.
// The leader moves the master to the other node with a new epoch after the
// master timeout; the new master recovers the workers, which re-attach by
// themselves: no worker is re-created (epochs unchanged) and the total is
// exact.
func TestMasterFailoverKill9(t *testing.T) {
	c := NewCluster(t, Options{})
	w := c.StartWitness()
	c.Start(JobManager, "mgr-1")
	jm1 := c.Start(JobMaster, "jm-1")
	jm2 := c.Start(JobMaster, "jm-2")
	c.Start(Worker, "wk-1")
	c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")

	const workers, target = 4, 150
	c.Counter("fo", workers, target, 20)
	j := c.WaitJob("fo", 20*time.Second, "running", func(j *api.Job) bool { return j.State == api.StateRunning })
	before := c.WaitWorkersOnline("fo", workers, 20*time.Second)
	host := NodeOf(j.Node, jm1, jm2)
	t.Logf("job on %s epoch %d; kill -9", host.ID, j.Epoch)
	host.Kill()

	moved := c.WaitJob("fo", 20*time.Second, "moved", func(x *api.Job) bool { return x.Epoch > j.Epoch && x.Node != j.Node })
	t.Logf("moved to %s epoch %d", moved.Node, moved.Epoch)
	final := c.WaitTerminal("fo", 60*time.Second)
	c.CheckCounter(final, workers, target)
	after := c.Workers("fo")
	for i, b := range before {
		if after[i].ID != b.ID || after[i].Epoch != b.Epoch {
			t.Errorf("worker %s re-created: epoch %d → %d", b.ID, b.Epoch, after[i].Epoch)
		}
	}
	checkWitness(t, w)
}

// checkWitness fails the test on any sign of two live incarnations in the
// accepted KV writes, and makes sure the witness saw the writes at all.
func checkWitness(t *testing.T, w *Witness) {
	t.Helper()
	if n := w.Count("b."); n == 0 {
		t.Fatal("witness saw no business writes")
	}
	if bad := w.Check(); len(bad) > 0 {
		t.Fatalf("KV history shows a stale writer:\n%s", strings.Join(bad, "\n"))
	}
}

// slowTiming makes every timeout long (master 30 s, workers 35 s), so that
// a move within seconds can only be the graceful hand-over's doing.
func slowTiming() Timing {
	return Timing{
		Heartbeat:       200 * time.Millisecond,
		MasterTimeout:   30 * time.Second,
		WorkerSelfFence: 32 * time.Second,
		WorkerTimeout:   35 * time.Second,
		LeaseTTL:        time.Second,
		CancelTimeout:   5 * time.Second,
		AssignTimeout:   time.Second,
	}
}

// handoverBound is far below the slow timeouts: a move faster than this is
// a hand-over, not a timeout.
const handoverBound = 10 * time.Second

// TestMasterHandoverSIGTERM: SIGTERM of a job-master node hands its master
// over at once (new epoch on the other node, workers kept), long before
// the 30 s master timeout could have moved it.
func TestMasterHandoverSIGTERM(t *testing.T) {
	c := NewCluster(t, Options{Timing: slowTiming()})
	w := c.StartWitness()
	c.Start(JobManager, "mgr-1")
	jm1 := c.Start(JobMaster, "jm-1")
	jm2 := c.Start(JobMaster, "jm-2")
	c.Start(Worker, "wk-1")
	c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")

	const workers, target = 4, 150
	c.Counter("ho", workers, target, 20)
	j := c.WaitJob("ho", 20*time.Second, "running", func(j *api.Job) bool { return j.State == api.StateRunning })
	before := c.WaitWorkersOnline("ho", workers, 20*time.Second)
	host := NodeOf(j.Node, jm1, jm2)

	t0 := time.Now()
	if code := host.Term(15 * time.Second); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM", host.Name, code)
	}
	moved := c.WaitJob("ho", handoverBound, "handed over", func(x *api.Job) bool { return x.Epoch > j.Epoch && x.Node != j.Node })
	took := time.Since(t0)
	t.Logf("handed over from %s to %s (epoch %d→%d) in %s; master timeout %s", j.Node, moved.Node, j.Epoch, moved.Epoch, took, c.Timing.MasterTimeout)
	if took >= c.Timing.MasterTimeout {
		t.Fatalf("hand-over took %s, no faster than the master timeout", took)
	}
	final := c.WaitTerminal("ho", 60*time.Second)
	c.CheckCounter(final, workers, target)
	for i, b := range c.Workers("ho") {
		if b.Epoch != before[i].Epoch {
			t.Errorf("worker %s re-created by the hand-over: epoch %d → %d", b.ID, before[i].Epoch, b.Epoch)
		}
	}
	checkWitness(t, w)
}

// TestWorkerNodeSIGTERM: SIGTERM of a worker node reports its workers as
// leaving, and their master re-creates them on another node at once, long
// before the 35 s worker timeout; the total stays exact.
func TestWorkerNodeSIGTERM(t *testing.T) {
	c := NewCluster(t, Options{Timing: slowTiming()})
	w := c.StartWitness()
	c.Start(JobManager, "mgr-1")
	c.Start(JobMaster, "jm-1")
	wk1 := c.Start(Worker, "wk-1")
	c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")

	const workers, target = 4, 150
	c.Counter("wt", workers, target, 20)
	before := c.WaitWorkersOnline("wt", workers, 20*time.Second)
	var leaving []string
	for _, r := range before {
		if r.Node == wk1.ID {
			leaving = append(leaving, r.ID)
		}
	}
	if len(leaving) == 0 {
		t.Fatalf("no worker placed on %s: %+v", wk1.ID, before)
	}

	t0 := time.Now()
	if code := wk1.Term(15 * time.Second); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM", wk1.Name, code)
	}
	c.Eventually(handoverBound, "workers of the leaving node re-created elsewhere", func() bool {
		ws := c.Workers("wt")
		for _, id := range leaving {
			for _, r := range ws {
				if r.ID == id && (r.Node == wk1.ID || r.Epoch < 2) && r.State != "finished" {
					return false
				}
			}
		}
		return true
	})
	took := time.Since(t0)
	t.Logf("%d workers moved off %s in %s; worker timeout %s", len(leaving), wk1.ID, took, c.Timing.WorkerTimeout)
	if took >= c.Timing.WorkerTimeout {
		t.Fatalf("re-creation took %s, no faster than the worker timeout", took)
	}
	final := c.WaitTerminal("wt", 60*time.Second)
	c.CheckCounter(final, workers, target)
	checkWitness(t, w)
}

// TestWorkerNodeKill9: kill -9 of a worker node. Each affected worker is
// reported offline (heartbeat_timeout) after the worker timeout, re-created
// on the other node with a new worker epoch, and resumes from its
// checkpoint: the total is exact, not more.
func TestWorkerNodeKill9(t *testing.T) {
	c := NewCluster(t, Options{})
	w := c.StartWitness()
	c.Start(JobManager, "mgr-1")
	c.Start(JobMaster, "jm-1")
	wk1 := c.Start(Worker, "wk-1")
	wk2 := c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")

	const workers, target = 4, 200
	c.Counter("wk", workers, target, 20)
	before := c.WaitWorkersOnline("wk", workers, 20*time.Second)
	lost := map[string]bool{}
	for _, r := range before {
		if r.Node == wk1.ID {
			lost[r.ID] = true
		}
	}
	if len(lost) == 0 {
		t.Fatalf("no worker placed on %s", wk1.ID)
	}
	// Let them make progress, so there is a checkpoint to resume from.
	time.Sleep(500 * time.Millisecond)
	wk1.Kill()
	t0 := time.Now()

	final := c.WaitTerminal("wk", 60*time.Second)
	c.CheckCounter(final, workers, target)
	offline := map[string]time.Time{}
	for _, ev := range c.Events("wk") {
		if _, seen := offline[ev.Worker]; ev.Kind == api.EventWorkerOffline && lost[ev.Worker] && !seen {
			// The first offline event of the worker is its killed incarnation's.
			if ev.Reason != "heartbeat_timeout" {
				t.Errorf("worker %s offline for %q, want heartbeat_timeout", ev.Worker, ev.Reason)
			}
			offline[ev.Worker] = ev.Time
		}
	}
	for id := range lost {
		at, ok := offline[id]
		if !ok {
			t.Errorf("no worker_offline event for %s", id)
			continue
		}
		// Lower bound only: the master may not declare it before its timeout.
		if at.Sub(t0) < c.Timing.WorkerTimeout-c.Timing.Heartbeat-100*time.Millisecond {
			t.Errorf("worker %s declared offline %s after the kill, before the worker timeout %s", id, at.Sub(t0), c.Timing.WorkerTimeout)
		}
	}
	for _, r := range c.Workers("wk") {
		if lost[r.ID] && (r.Epoch != 2 || r.Node != wk2.ID) {
			t.Errorf("worker %s ended at epoch %d on %s, want epoch 2 on %s", r.ID, r.Epoch, r.Node, wk2.ID)
		}
	}
	if n := wk2.CountLogs("counter resumes from checkpoint"); n < len(lost) {
		t.Errorf("%d re-created workers resumed from a checkpoint, want %d", n, len(lost))
	}
	checkWitness(t, w)
}

// TestMasterFailoverSysDisconnect: with system-account access, the leader
// follows $SYS disconnect events; kill -9 of the job-master node closes its
// connection and the master moves at once, long before the 30 s master
// timeout, keeping its workers.
func TestMasterFailoverSysDisconnect(t *testing.T) {
	c := NewCluster(t, Options{Timing: slowTiming(), System: true})
	w := c.StartWitness()
	mgr := c.Start(JobManager, "mgr-1")
	jm1 := c.Start(JobMaster, "jm-1")
	jm2 := c.Start(JobMaster, "jm-2")
	c.Start(Worker, "wk-1")
	c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")
	c.Eventually(10*time.Second, "the leader following disconnect events", func() bool {
		return mgr.CountLogs("following NATS disconnect events") == 1
	})

	const workers, target = 4, 150
	c.Counter("sys", workers, target, 20)
	j := c.WaitJob("sys", 20*time.Second, "running", func(j *api.Job) bool { return j.State == api.StateRunning })
	before := c.WaitWorkersOnline("sys", workers, 20*time.Second)
	host := NodeOf(j.Node, jm1, jm2)
	t0 := time.Now()
	host.Kill()
	moved := c.WaitJob("sys", handoverBound, "moved", func(x *api.Job) bool { return x.Epoch > j.Epoch && x.Node != j.Node })
	took := time.Since(t0)
	t.Logf("moved from %s to %s in %s after kill -9; master timeout %s", j.Node, moved.Node, took, c.Timing.MasterTimeout)
	if took >= c.Timing.MasterTimeout {
		t.Fatalf("failover took %s, no faster than the master timeout", took)
	}
	final := c.WaitTerminal("sys", 60*time.Second)
	c.CheckCounter(final, workers, target)
	for i, b := range c.Workers("sys") {
		if b.Epoch != before[i].Epoch {
			t.Errorf("worker %s re-created: epoch %d → %d", b.ID, before[i].Epoch, b.Epoch)
		}
	}
	if n := mgr.CountLogs("job-master node disconnected"); n < 1 {
		t.Errorf("the leader logged no disconnect")
	}
	checkWitness(t, w)
}

// TestMasterFailoverWithLostWorkers: kill -9 of the master's node and of a
// worker node at once. The new master recovers every worker record, the
// survivors re-attach, and it stays not ready until the workers that never
// come back time out (worker_timeout after its start); those are reported
// offline (heartbeat_timeout) and re-created from their checkpoints, the
// survivors keep their epochs, the total is exact.
func TestMasterFailoverWithLostWorkers(t *testing.T) {
	c := NewCluster(t, Options{})
	w := c.StartWitness()
	c.Start(JobManager, "mgr-1")
	jm1 := c.Start(JobMaster, "jm-1")
	jm2 := c.Start(JobMaster, "jm-2")
	wk1 := c.Start(Worker, "wk-1")
	wk2 := c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")

	const workers, target = 4, 250
	c.Counter("lost", workers, target, 20)
	j := c.WaitJob("lost", 20*time.Second, "running", func(j *api.Job) bool { return j.State == api.StateRunning })
	before := c.WaitWorkersOnline("lost", workers, 20*time.Second)
	c.WaitProgress("lost", 10, 20*time.Second)
	host, other := jm1, jm2
	if j.Node == jm2.ID {
		host, other = jm2, jm1
	}
	host.Kill()
	wk1.Kill()

	final := c.WaitTerminal("lost", 60*time.Second)
	c.CheckCounter(final, workers, target)
	took, ok := readyTook(other, "lost", final.Epoch)
	if !ok {
		t.Fatalf("no master ready at epoch %d on %s", final.Epoch, other.ID)
	}
	t.Logf("new master ready %s after its start (worker timeout %s)", took, c.Timing.WorkerTimeout)
	if took < c.Timing.WorkerTimeout-c.Timing.Heartbeat {
		t.Errorf("new master ready after %s, before the lost workers could time out", took)
	}
	after := c.Workers("lost")
	for i, b := range before {
		switch {
		case b.Node == wk1.ID && (after[i].Epoch != b.Epoch+1 || after[i].Node != wk2.ID):
			t.Errorf("lost worker %s ended at epoch %d on %s, want re-created on %s", b.ID, after[i].Epoch, after[i].Node, wk2.ID)
		case b.Node != wk1.ID && after[i].Epoch != b.Epoch:
			t.Errorf("surviving worker %s re-created: epoch %d → %d", b.ID, b.Epoch, after[i].Epoch)
		}
	}
	offline := 0
	for _, ev := range c.Events("lost") {
		if ev.Kind == api.EventWorkerOffline && ev.Epoch == final.Epoch && ev.Reason == "heartbeat_timeout" {
			offline++
		}
	}
	lost := 0
	for _, b := range before {
		if b.Node == wk1.ID {
			lost++
		}
	}
	if offline != lost {
		t.Errorf("%d workers reported offline by the new master, want %d", offline, lost)
	}
	checkWitness(t, w)
}
