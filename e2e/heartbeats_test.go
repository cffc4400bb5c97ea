package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-run/drover/pkg/api"
)

// TestHeartbeatsOfManyJobsThroughOneNode runs the workers of many jobs on
// one worker node and their masters on one job-master node, under the
// deployment's NATS permissions: the node heartbeats each job's workers in
// one message per interval and every master acknowledges on that
// message's own reply subject (the server lets a job-master node answer
// each request once; the heartbeats of thirty jobs arrive together, so a
// subject shared by them would have most answers refused). Over the worker
// timeout and a self-fence no worker may fence itself or be re-created.
// Then the job-master node is killed: its thirty masters time out
// together and the leader's assignments reach the other node in a few
// batched requests; every job moves with its workers kept.
func TestHeartbeatsOfManyJobsThroughOneNode(t *testing.T) {
	c := NewCluster(t, Options{})
	mgr := c.Start(JobManager, "mgr-1")
	jm := c.Start(JobMaster, "jm-1")
	wk := c.Start(Worker, "wk-1")
	c.WaitNodes(api.NodeJobMaster, "jm-1")
	c.WaitNodes(api.NodeWorker, "wk-1")

	const jobs, workers = 30, 2
	for i := range jobs {
		c.Counter(fmt.Sprintf("hb%02d", i), workers, 1_000_000_000, 200)
	}
	for i := range jobs {
		c.WaitWorkersOnline(fmt.Sprintf("hb%02d", i), workers, 30*time.Second)
	}
	watch := c.Timing.WorkerSelfFence + c.Timing.WorkerTimeout
	t.Logf("%d workers online; watching for %s", jobs*workers, watch)
	time.Sleep(watch)

	for i := range jobs {
		for _, w := range c.Workers(fmt.Sprintf("hb%02d", i)) {
			if w.Epoch != 1 || w.State != "online" {
				t.Errorf("job hb%02d worker %s: epoch %d, %s; want epoch 1, online", i, w.ID, w.Epoch, w.State)
			}
		}
	}
	wm, err := wk.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if n := Sum(wm, "drover_runtime_workers_self_fenced_total"); n != 0 {
		t.Errorf("%v workers fenced themselves: their heartbeats went unacknowledged", n)
	}
	mm, err := jm.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	// Every worker heartbeats at least once per interval over the watch.
	want := float64(jobs*workers) * float64(watch/c.Timing.Heartbeat) / 2
	if n := Sum(mm, "drover_runtime_heartbeats_received_total"); n < want {
		t.Errorf("masters received %v heartbeats, want at least %v", n, want)
	}

	before, err := mgr.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	jm2 := c.Start(JobMaster, "jm-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
	jm.Kill()
	for i := range jobs {
		id := fmt.Sprintf("hb%02d", i)
		c.WaitJob(id, c.Timing.Settle()+30*time.Second, "moved to jm-2", func(j *api.Job) bool {
			return j.Epoch >= 2 && j.Node == "jm-2" && j.State == api.StateRunning
		})
		for _, w := range c.WaitWorkersOnline(id, workers, 30*time.Second) {
			if w.Epoch != 1 {
				t.Errorf("job %s worker %s re-created after the move: epoch %d", id, w.ID, w.Epoch)
			}
		}
	}
	c.Eventually(30*time.Second, "every moved master to count its workers' heartbeats", func() bool {
		m, err := jm2.Metrics()
		return err == nil && Sum(m, "drover_runtime_heartbeats_received_total") >= float64(jobs*workers)
	})
	after, err := mgr.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	const batch = "drover_jobmanager_assignments_per_request"
	requests, moved := Sum(after, batch+"_count")-Sum(before, batch+"_count"), Sum(after, batch+"_sum")-Sum(before, batch+"_sum")
	t.Logf("%v assignments in %v requests", moved, requests)
	if moved < jobs || requests >= moved {
		t.Errorf("the move sent %v assignments in %v requests, want at least %d in fewer requests", moved, requests, jobs)
	}
}
