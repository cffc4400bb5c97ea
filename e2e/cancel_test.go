package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/jobs/testjobs"
	"github.com/drover-run/drover/pkg/api"
)

// TestCancelAlwaysEnds: a cancel ends every job — a pending one at once,
// a running one through its master's OnCancel, a stubborn master that
// ignores OnCancel by force after the cancel timeout (its workers stop),
// and a job whose master's node was just killed.
func TestCancelAlwaysEnds(t *testing.T) {
	c := NewCluster(t, Options{})
	mgr := c.Start(JobManager, "mgr-1")
	jm1 := c.Start(JobMaster, "jm-1")
	jm2 := c.Start(JobMaster, "jm-2")
	c.Start(Worker, "wk-1")
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
	c.WaitNodes(api.NodeWorker, "wk-1")
	forced := func() float64 {
		m, err := mgr.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		return Sum(m, "drover_jobmanager_forced_cancels_total")
	}

	t.Run("pending", func(t *testing.T) {
		// No job-master node matches: the job waits, pending.
		c.Submit(api.Spec{ID: "pending", Type: "counter", Selectors: map[string]string{"zone": "nowhere"}})
		c.WaitJob("pending", 10*time.Second, "pending", func(j *api.Job) bool { return j.State == api.StatePending })
		if j := c.Cancel("pending"); j.State != api.StateCanceled {
			t.Fatalf("cancel answered %s, want canceled at once", j.State)
		}
		time.Sleep(c.Timing.Settle())
		if j := c.Job("pending"); j.State != api.StateCanceled || j.Epoch != 0 {
			t.Fatalf("canceled pending job is now %s at epoch %d", j.State, j.Epoch)
		}
	})

	t.Run("running", func(t *testing.T) {
		before := forced()
		c.Counter("running", 2, 100000, 20)
		c.WaitWorkersOnline("running", 2, 20*time.Second)
		if j := c.Cancel("running"); j.State != api.StateCanceling && j.State != api.StateCanceled {
			t.Fatalf("cancel answered %s", j.State)
		}
		if j := c.WaitTerminal("running", 20*time.Second); j.State != api.StateCanceled {
			t.Fatalf("ended %s", j.State)
		}
		if n := forced() - before; n != 0 {
			t.Fatalf("%v forced cancels: the master's own OnCancel should have ended it", n)
		}
		c.waitStill("running", "count.w0", "count.w1")
	})

	t.Run("stubborn master forced after the cancel timeout", func(t *testing.T) {
		before := forced()
		c.Submit(api.Spec{ID: "stubborn", Type: testjobs.Stubborn, Config: json.RawMessage(`{"workers":2,"interval_ms":50}`)})
		c.WaitWorkersOnline("stubborn", 2, 20*time.Second)
		t0 := time.Now()
		c.Cancel("stubborn")
		j := c.WaitTerminal("stubborn", c.Timing.CancelTimeout+20*time.Second)
		took := time.Since(t0)
		if j.State != api.StateCanceled {
			t.Fatalf("ended %s", j.State)
		}
		if took < c.Timing.CancelTimeout {
			t.Fatalf("canceled after %s, before the cancel timeout %s: the master did not ignore it", took, c.Timing.CancelTimeout)
		}
		if n := forced() - before; n != 1 {
			t.Fatalf("%v forced cancels, want 1", n)
		}
		// The fenced master and its workers stop: their beats stop moving.
		c.waitStill("stubborn", testjobs.BeatKey("master"), testjobs.BeatKey("beat0"), testjobs.BeatKey("beat1"))
	})

	t.Run("master dead", func(t *testing.T) {
		c.Counter("orphan", 2, 100000, 20)
		j := c.WaitJob("orphan", 20*time.Second, "running", func(j *api.Job) bool { return j.State == api.StateRunning })
		c.WaitWorkersOnline("orphan", 2, 20*time.Second)
		NodeOf(j.Node, jm1, jm2).Kill()
		c.Cancel("orphan")
		if j := c.WaitTerminal("orphan", 30*time.Second); j.State != api.StateCanceled {
			t.Fatalf("ended %s", j.State)
		}
	})
}

// waitStill waits until the job's business keys stop changing for 500 ms
// (ten ticks of the test jobs): its master and workers have stopped.
func (c *Cluster) waitStill(job string, keys ...string) {
	c.t.Helper()
	var last string
	var since time.Time
	c.Eventually(10*time.Second, "business keys of "+job+" to stop changing", func() bool {
		var b strings.Builder
		for _, k := range keys {
			b.Write(c.business(job, k))
			b.WriteByte('/')
		}
		if b.String() != last {
			last, since = b.String(), time.Now()
		}
		return time.Since(since) >= 500*time.Millisecond
	})
}
