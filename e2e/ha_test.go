package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-run/drover/pkg/api"
)

// TestJobManagerHA: two job-manager replicas; kill -9 of the leader (found
// through /readyz) hands leadership to the other within the lease TTL.
// Submissions during the gap are accepted by the surviving replica and
// scheduled once it leads; no job is lost, none is scheduled twice (every
// master ran once, at epoch 1), and a restarted replica does not take the
// lease back.
func TestJobManagerHA(t *testing.T) {
	tm := FastTiming()
	tm.LeaseTTL = 2 * time.Second
	c := NewCluster(t, Options{Timing: tm})
	jmA := c.Start(JobManager, "mgr-a")
	jmB := c.Start(JobManager, "mgr-b")
	jm1 := c.Start(JobMaster, "jm-1")
	jm2 := c.Start(JobMaster, "jm-2")
	c.Start(Worker, "wk-1")
	c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")
	leader := c.WaitLeader(20*time.Second, jmA, jmB)
	other := jmA
	if leader == jmA {
		other = jmB
	}

	const workers, target = 2, 100
	var ids []string
	for i := range 4 {
		id := fmt.Sprintf("before%d", i)
		ids = append(ids, id)
		c.Counter(id, workers, target, 20)
	}
	for _, id := range ids {
		c.WaitJob(id, 20*time.Second, "running", func(j *api.Job) bool { return j.State == api.StateRunning })
	}

	leader.Kill()
	t0 := time.Now()
	var gap []string
	for i := range 4 {
		id := fmt.Sprintf("gap%d", i)
		gap = append(gap, id)
		c.Counter(id, workers, target, 20)
	}
	accepted := time.Since(t0)
	if other.Leading() {
		t.Logf("note: %s already led when the gap submissions were accepted (%s after the kill)", other.ID, accepted)
	}
	c.WaitLeader(tm.LeaseTTL+5*time.Second, other)
	// When it took the lease is its own log line's: the submissions and
	// our /readyz polling take their time on a loaded machine, and are
	// no part of the take-over.
	at, ok := other.lastLogTime("leading")
	if !ok {
		t.Fatalf("%s leads but logged no \"leading\" line", other.ID)
	}
	took := at.Sub(t0)
	t.Logf("leadership moved %s → %s in %s (lease TTL %s); gap submissions accepted within %s", leader.ID, other.ID, took, tm.LeaseTTL, accepted)
	// The lease lapses at most one TTL after the kill (its last renewal was
	// before it), and the follower takes it over at that moment; allow for
	// its timer and CAS on a loaded machine.
	if took > tm.LeaseTTL+500*time.Millisecond {
		t.Errorf("leadership took %s to move, lease TTL %s", took, tm.LeaseTTL)
	}

	restarted := leader.Restart()
	c.Eventually(10*time.Second, "restarted replica serving", func() bool { _, code, err := restarted.Readyz(); return err == nil && code == 200 })
	ids = append(ids, gap...)
	for _, id := range ids {
		final := c.WaitTerminal(id, 60*time.Second)
		c.CheckCounter(final, workers, target)
		if final.Epoch != 1 || final.Restarts != 0 {
			t.Errorf("job %s ended at epoch %d with %d restarts: scheduled more than once", id, final.Epoch, final.Restarts)
		}
	}
	if restarted.Leading() || !other.Leading() {
		t.Errorf("leader after restart: %s=%v %s=%v, want %s only", restarted.ID, restarted.Leading(), other.ID, other.Leading(), other.ID)
	}
	inits := map[string]int{}
	for _, p := range []*Proc{jm1, jm2} {
		for _, e := range p.Logs() {
			switch e.Msg() {
			case "master initializing":
				inits[e.Str("job_id")]++
			case "master recovering":
				t.Errorf("%s recovered job %s: its master was moved", p.ID, e.Str("job_id"))
			}
		}
	}
	for _, id := range ids {
		if inits[id] != 1 {
			t.Errorf("job %s initialized %d times, want once", id, inits[id])
		}
	}
}
