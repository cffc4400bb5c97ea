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
func TestHeartbeatsOfManyJobsThroughOneNode(t *testing.T) {
	c := NewCluster(t, Options{})
	c.Start(JobManager, "mgr-1")
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
}
