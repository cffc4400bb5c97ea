package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
)

// frozenFor is how long a process stays SIGSTOPped: longer than every
// timeout, so the rest of the system has failed it over and fenced it.
func frozenFor(t Timing) time.Duration {
	return max(t.MasterTimeout, t.WorkerTimeout, t.LeaseTTL, t.WorkerSelfFence) + 2*time.Second
}

// TestFencingFrozenJobMaster: SIGSTOP a job-master node hosting three
// masters for longer than every timeout; the leader moves them to the
// other node, whose masters take over the workers. On SIGCONT the zombie
// masters try to write (they think their workers went silent), every
// write is refused, and each stops itself: no write of theirs takes effect,
// no worker is re-created, and every total is exact.
func TestFencingFrozenJobMaster(t *testing.T) {
	c := NewCluster(t, Options{})
	w := c.StartWitness()
	c.Start(JobManager, "mgr-1")
	jm1 := c.Start(JobMaster, "jm-1")
	c.Start(Worker, "wk-1")
	c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")

	// Counter jobs check exactness; beat jobs' masters write every tick and
	// have no workers whose heartbeats could tell them first that they are
	// stale, so a resumed zombie master is about to write.
	const jobs, beats, workers, target = 2, 3, 4, 400
	for i := range jobs {
		c.Counter(fmt.Sprintf("fz%d", i), workers, target, 20)
	}
	for i := range beats {
		c.Beat(fmt.Sprintf("fb%d", i), 0, 10, 1)
	}
	before := map[string][]kvstate.WorkerRecord{}
	for i := range jobs {
		id := fmt.Sprintf("fz%d", i)
		c.WaitJob(id, 20*time.Second, "running on jm-1", func(j *api.Job) bool { return j.State == api.StateRunning && j.Node == jm1.ID })
		before[id] = c.WaitWorkersOnline(id, workers, 20*time.Second)
	}
	for i := range beats {
		id := fmt.Sprintf("fb%d", i)
		c.WaitJob(id, 20*time.Second, "running on jm-1", func(j *api.Job) bool { return j.State == api.StateRunning && j.Node == jm1.ID })
	}
	jm2 := c.Start(JobMaster, "jm-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")

	jm1.Stop()
	frozenAt := time.Now()
	ids := []string{}
	for i := range jobs {
		ids = append(ids, fmt.Sprintf("fz%d", i))
	}
	for i := range beats {
		ids = append(ids, fmt.Sprintf("fb%d", i))
	}
	for _, id := range ids {
		c.WaitJob(id, 20*time.Second, "moved to jm-2", func(j *api.Job) bool { return j.Node == jm2.ID && j.Epoch >= 2 })
	}
	time.Sleep(time.Until(frozenAt.Add(frozenFor(c.Timing))))
	jm1.Cont()
	t.Logf("jm-1 frozen for %s", time.Since(frozenAt))

	c.Eventually(30*time.Second, "every zombie master of jm-1 ended", func() bool {
		return len(MastersEnded(jm1)) >= len(ids)
	})
	rejected := RejectedWrites(jm1)
	t.Logf("jm-1: %d fenced stops, %d writes refused, %d masters stopped by the leader",
		FencedStops(jm1), rejected, jm1.CountLogs("master stopped"))
	if rejected == 0 {
		t.Fatal("no write of the zombie masters was refused: the fence was not exercised")
	}
	checkRefusedMetric(t, jm1, rejected)
	for i := range jobs {
		id := fmt.Sprintf("fz%d", i)
		final := c.WaitTerminal(id, 60*time.Second)
		c.CheckCounter(final, workers, target)
		for k, r := range c.Workers(id) {
			if r.Epoch != before[id][k].Epoch {
				t.Errorf("%s worker %s re-created: epoch %d → %d", id, r.ID, before[id][k].Epoch, r.Epoch)
			}
		}
	}
	for i := range beats {
		id := fmt.Sprintf("fb%d", i)
		c.Cancel(id)
		if j := c.WaitTerminal(id, 30*time.Second); j.State != api.StateCanceled {
			t.Errorf("beat job %s ended %s", id, j.State)
		}
	}
	for _, e := range w.Entries() {
		if strings.HasPrefix(e.Key, "w.") && strings.Contains(string(e.Value), `"state":"lost"`) {
			t.Errorf("a worker was declared lost (seq %d %s): a zombie master's write took effect", e.Seq, e.Key)
		}
	}
	checkWitness(t, w)
}

// TestFencingFrozenWorkerNode: SIGSTOP a worker node for longer than
// every timeout; the masters declare its workers lost and re-create them
// on the other node, which resume from their checkpoints. On SIGCONT the
// zombie workers try to write their next step, the writes are refused and
// they stop: the KV history shows no step written twice, the totals are
// exact.
func TestFencingFrozenWorkerNode(t *testing.T) {
	c := NewCluster(t, Options{})
	w := c.StartWitness()
	c.Start(JobManager, "mgr-1")
	c.Start(JobMaster, "jm-1")
	wk1 := c.Start(Worker, "wk-1")
	wk2 := c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")

	// Counter jobs check exactness; the beat job's workers write in bursts
	// of 20 with 5 ms between bursts, so a worker is almost always frozen in
	// the middle of a burst, and resumed it goes on writing (and is refused)
	// whatever it does with the stop its master queued meanwhile. With
	// bursts of 4 a loaded machine once resumed every zombie between bursts,
	// where the stop came first and nothing was written.
	const jobs, workers, target = 2, 4, 500
	const beatWorkers = 6
	frozen := map[string]int{}
	for i := range jobs {
		c.Counter(fmt.Sprintf("fw%d", i), workers, target, 20)
	}
	c.Beat("fwb", beatWorkers, 5, 20)
	for i := range jobs {
		id := fmt.Sprintf("fw%d", i)
		for _, r := range c.WaitWorkersOnline(id, workers, 20*time.Second) {
			if r.Node == wk1.ID {
				frozen[id]++
			}
		}
		// Progress first, so the re-created workers have a checkpoint.
		c.WaitProgress(id, 20, 20*time.Second)
	}
	for _, r := range c.WaitWorkersOnline("fwb", beatWorkers, 20*time.Second) {
		if r.Node == wk1.ID {
			frozen["fwb"]++
		}
	}
	wk1.Stop()
	frozenAt := time.Now()
	c.Eventually(30*time.Second, "workers of the frozen node re-created on wk-2", func() bool {
		for id := range frozen {
			for _, r := range c.Workers(id) {
				if r.Node == wk1.ID && r.State != "finished" {
					return false
				}
			}
		}
		return true
	})
	time.Sleep(time.Until(frozenAt.Add(frozenFor(c.Timing))))
	wk1.Cont()
	t.Logf("wk-1 frozen for %s", time.Since(frozenAt))

	total := 0
	for _, n := range frozen {
		total += n
	}
	c.Eventually(30*time.Second, "every zombie worker of wk-1 ended", func() bool {
		return len(WorkersEnded(wk1)) >= total
	})
	rejected := RejectedWrites(wk1)
	t.Logf("wk-1: %d zombie workers; %d writes refused, %d fenced stops, %d self-fenced, %d stopped by their master",
		total, rejected, FencedStops(wk1), wk1.CountLogs("worker fenced itself"), wk1.CountLogs("worker stopped by its master"))
	if rejected == 0 {
		t.Fatal("no write of the zombie workers was refused: the fence was not exercised")
	}
	checkRefusedMetric(t, wk1, rejected)
	for i := range jobs {
		final := c.WaitTerminal(fmt.Sprintf("fw%d", i), 60*time.Second)
		c.CheckCounter(final, workers, target)
	}
	if n := wk2.CountLogs("counter resumes from checkpoint"); n < total-frozen["fwb"] {
		t.Errorf("%d counter workers resumed on wk-2, want %d", n, total-frozen["fwb"])
	}
	c.Cancel("fwb")
	if j := c.WaitTerminal("fwb", 30*time.Second); j.State != api.StateCanceled {
		t.Errorf("beat job ended %s", j.State)
	}
	checkWitness(t, w)
}

// checkRefusedMetric checks that the resumed process counts the refused
// writes its log shows in drover_runtime_fenced_writes_rejected_total.
func checkRefusedMetric(t *testing.T, p *Proc, logged int) {
	t.Helper()
	m, err := p.Metrics()
	if err != nil {
		t.Fatalf("%s metrics: %v", p.Name, err)
	}
	if n := Sum(m, "drover_runtime_fenced_writes_rejected_total"); int(n) != logged {
		t.Errorf("%s: drover_runtime_fenced_writes_rejected_total = %v, its log shows %d refused writes", p.Name, n, logged)
	}
}
