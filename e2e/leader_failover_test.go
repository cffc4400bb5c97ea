package e2e

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

var leaderFailoverOut = flag.String("leader-failover.out", "", "write the leader failover figures as JSON to this file (merged per mode), e.g. ../bench/results/leader_failover.json")

// TestLeaderFailoverOnDisconnect: with system-account access, kill -9 of
// the leading job manager hands the lease to the other replica on the
// server's disconnect event, well before the lease could lapse; before
// that, connections that borrow the leader's name and close (a client, a
// worker, a job-master identity, and even a job-manager identity on a
// connection of its own) change nothing. Without the event the take-over
// comes at least two thirds of a TTL after the kill (TestJobManagerHA), so
// the bound below fails without it.
func TestLeaderFailoverOnDisconnect(t *testing.T) {
	tm := FastTiming()
	tm.LeaseTTL = 6 * time.Second
	c := NewCluster(t, Options{Timing: tm, System: true})
	jmA := c.Start(JobManager, "mgr-a")
	jmB := c.Start(JobManager, "mgr-b")
	c.Start(JobMaster, "jm-1")
	c.Start(Worker, "wk-1")
	c.WaitNodes(api.NodeJobMaster, "jm-1")
	c.WaitNodes(api.NodeWorker, "wk-1")
	leader := c.WaitLeader(20*time.Second, jmA, jmB)
	other := jmA
	if leader == jmA {
		other = jmB
	}
	// The other replica follows the events once it has logged so.
	c.Eventually(20*time.Second, "the standby to follow disconnect events", func() bool {
		return other.hasLog("following NATS disconnect events for fast failover")
	})
	c.Counter("before", 1, 1_000_000, 50)
	before := c.WaitJob("before", 20*time.Second, "running", func(j *api.Job) bool { return j.State == api.StateRunning })

	name := fmt.Sprintf("%s:jobmanager:%s", c.Space.Prefix(), leader.ID)
	for _, role := range []topics.Role{topics.RoleClient, topics.RoleWorker, topics.RoleJobMaster, topics.RoleJobManager} {
		nc, err := c.Connect(role, name)
		if err != nil {
			t.Fatalf("%s connects: %v", role, err)
		}
		nc.Close()
	}
	c.Eventually(20*time.Second, "the standby to ignore the four borrowed names", func() bool {
		return other.countLog("ignored a disconnect event naming the leader: not the connection its lease announces") >= 4
	})
	if !leader.Leading() || other.Leading() {
		t.Fatalf("a borrowed name moved the lease: %s leading %v, %s leading %v", leader.ID, leader.Leading(), other.ID, other.Leading())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if l, _, err := c.Store.Election().Leader(ctx); err != nil || l.Holder != leader.ID {
		t.Fatalf("lease = %+v, %v; want held by %s", l, err, leader.ID)
	}

	t0 := time.Now()
	leader.Kill()
	c.WaitLeader(tm.LeaseTTL+5*time.Second, other)
	took := time.Since(t0)
	at, ok := other.logTime("leading", "won", "disconnected")
	if !ok {
		t.Fatalf("%s leads, but not on the disconnect event (took %s)", other.ID, took)
	}
	took = at.Sub(t0)
	t.Logf("lease moved %s → %s %s after kill -9 (lease TTL %s)", leader.ID, other.ID, took, tm.LeaseTTL)
	if took >= tm.LeaseTTL/2 {
		t.Errorf("take-over %s after the kill, not well under the lease TTL %s", took, tm.LeaseTTL)
	}
	// The new leader schedules, and the running job kept its master.
	c.Counter("after", 1, 20, 10)
	c.WaitTerminal("after", 30*time.Second)
	if j := c.Job("before"); j.Epoch != before.Epoch || j.Node != before.Node {
		t.Errorf("the running job's master moved: epoch %d on %s → %d on %s", before.Epoch, before.Node, j.Epoch, j.Node)
	}
}

// BenchmarkLeaderFailover measures kill -9 of the leading job manager →
// the first job submitted after the kill scheduled by the new leader (its
// "master assigned" log line), over two replicas with the default timings.
// One trial per iteration; run
//
//	go test -run '^$' -bench BenchmarkLeaderFailover -benchtime 20x ./e2e -leader-failover.out ../bench/results/leader_failover.json
//
// Modes: sys-disconnect (the standby takes the lease on the leader's $SYS
// disconnect event) and lease-ttl (it waits for the lease to lapse).
func BenchmarkLeaderFailover(b *testing.B) {
	b.Run("sys-disconnect", func(b *testing.B) { benchLeaderFailover(b, "sys-disconnect", true) })
	b.Run("lease-ttl", func(b *testing.B) { benchLeaderFailover(b, "lease-ttl", false) })
}

func benchLeaderFailover(b *testing.B, mode string, system bool) {
	c := NewCluster(b, Options{Timing: DefaultTiming(), System: system})
	mgrs := []*Proc{c.Start(JobManager, "mgr-a"), c.Start(JobManager, "mgr-b")}
	c.Start(JobMaster, "jm-1")
	c.Start(Worker, "wk-1")
	c.WaitNodes(api.NodeJobMaster, "jm-1")
	c.WaitNodes(api.NodeWorker, "wk-1")

	var trials []failoverTrial
	b.ResetTimer()
	for n := range b.N {
		leader := c.WaitLeader(60*time.Second, mgrs...)
		i := 0
		if mgrs[1] == leader {
			i = 1
		}
		standby := mgrs[1-i]
		if system {
			c.Eventually(30*time.Second, "the standby to follow disconnect events", func() bool {
				return standby.hasLog("following NATS disconnect events for fast failover")
			})
		}
		id := fmt.Sprintf("after%d", n)
		t0 := time.Now()
		leader.Kill()
		// A request the server still routes to the dead replica's API
		// subscription waits out the client's timeout (3 s): that is the
		// API's outage, not the scheduler's. Submit once the server has
		// dropped the connection (within milliseconds of the kill).
		c.waitConnGone(fmt.Sprintf("%s:jobmanager:%s", c.Space.Prefix(), leader.ID), 10*time.Second)
		c.Counter(id, 1, 5, 10)
		var at time.Time
		c.Eventually(60*time.Second, "the new leader to schedule "+id, func() bool {
			var ok bool
			at, ok = logTime(standby, "master assigned", id, 1)
			return ok
		})
		tr := failoverTrial{Total: at.Sub(t0)}
		if led, ok := standby.lastLogTime("leading"); ok {
			tr.Detect = led.Sub(t0)
			tr.Recover = at.Sub(led)
		}
		trials = append(trials, tr)
		b.Logf("trial %d: %s → %s, first job scheduled %s after kill -9 (lease taken %s)", len(trials), leader.ID, standby.ID,
			tr.Total.Round(time.Millisecond), tr.Detect.Round(time.Millisecond))
		mgrs[i] = leader.Restart()
		c.WaitTerminal(id, 60*time.Second)
	}
	b.StopTimer()
	sum := summarize(trials)
	b.ReportMetric(sum["p50_ms"].(float64), "p50-ms")
	b.ReportMetric(sum["p99_ms"].(float64), "p99-ms")
	if *leaderFailoverOut != "" && b.N >= *failoverTrials {
		what := "kill -9 of the leading job manager (two replicas) → the first job submitted after the kill scheduled by the new leader (its \"master assigned\"); detect = kill → the standby leads, recover = leads → that job scheduled"
		cmd := "go test -run '^$' -bench BenchmarkLeaderFailover -benchtime 20x ./e2e -leader-failover.out ../bench/results/leader_failover.json"
		if err := mergeResultsAs(*leaderFailoverOut, mode, sum, c.Timing, what, cmd); err != nil {
			b.Fatal(err)
		}
	}
}

// waitConnGone waits until the server lists no connection named name,
// checking every millisecond: the benchmark's figure includes this wait.
func (c *Cluster) waitConnGone(name string, within time.Duration) {
	c.t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(time.Millisecond) {
		cz, err := c.Server.Connz(&server.ConnzOptions{Limit: 1 << 16})
		gone := err == nil
		for i := 0; gone && i < len(cz.Conns); i++ {
			gone = cz.Conns[i].Name != name
		}
		if gone {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the server still lists %s after %s", name, within)
		}
	}
}

// hasLog reports whether the process logged msg.
func (p *Proc) hasLog(msg string) bool { return p.countLog(msg) > 0 }

// countLog counts the process's log lines msg.
func (p *Proc) countLog(msg string) int {
	n := 0
	for _, e := range p.Logs() {
		if e.Msg() == msg {
			n++
		}
	}
	return n
}

// logTime returns the time of the process's last log line msg whose field
// key is val.
func (p *Proc) logTime(msg, key, val string) (time.Time, bool) {
	var at time.Time
	ok := false
	for _, e := range p.Logs() {
		if e.Msg() == msg && e.Str(key) == val {
			t, err := time.Parse(time.RFC3339Nano, e.Str("time"))
			at, ok = t, err == nil
		}
	}
	return at, ok
}

// lastLogTime returns the time of the process's last log line msg.
func (p *Proc) lastLogTime(msg string) (time.Time, bool) {
	var at time.Time
	ok := false
	for _, e := range p.Logs() {
		if e.Msg() == msg {
			t, err := time.Parse(time.RFC3339Nano, e.Str("time"))
			at, ok = t, err == nil
		}
	}
	return at, ok
}
