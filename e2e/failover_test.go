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
