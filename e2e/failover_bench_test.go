package e2e

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/pkg/api"
)

var (
	failoverOut = flag.String("failover.out", "", "write the failover figures as JSON to this file (merged per mode), e.g. ../bench/results/failover.json")
	// failoverTrials keeps a short run (-benchtime 1x, or the first
	// probing run of b.N = 1) from writing figures of too few trials.
	failoverTrials = flag.Int("failover.trials", 20, "trials a failover benchmark needs before it writes its figures (-failover.out, -leader-failover.out)")
)

// failoverWorkers is the size of the job whose master is failed over.
const failoverWorkers = 16

// BenchmarkFailover measures master failover with the default timings
// (docs/failover.md, Timings): kill -9 of the job-master node hosting a running counter job
// with 16 workers, until its new master is ready with every worker
// re-attached (its master_ready event). One trial per iteration; run
//
//	go test -run '^$' -bench BenchmarkFailover -benchtime 20x ./e2e -failover.out ../bench/results/failover.json
//
// Modes: heartbeat (the leader notices the silence after the master
// timeout) and sys-disconnect (the leader follows $SYS disconnect events
// with a system-account connection).
func BenchmarkFailover(b *testing.B) {
	b.Run("heartbeat", func(b *testing.B) { benchFailover(b, "heartbeat", false) })
	b.Run("sys-disconnect", func(b *testing.B) { benchFailover(b, "sys-disconnect", true) })
}

// failoverTrial is one kill -9 and its recovery.
type failoverTrial struct {
	// Total is kill -9 → new master ready with every worker re-attached.
	Total time.Duration
	// Detect is kill -9 → the leader assigned the master elsewhere.
	Detect time.Duration
	// Recover is new master start → ready (workers re-attached).
	Recover time.Duration
}

func benchFailover(b *testing.B, mode string, system bool) {
	// Every trial kills the node under the same job, which the job manager
	// would rightly take for a crash loop (a backoff from the second death,
	// quarantine at the third). A probation of 1 ms makes each trial a first
	// death, as it is for a job whose node dies once.
	c := NewCluster(b, Options{Timing: DefaultTiming(), System: system,
		Env: map[string]string{"DROVER_CRASH_PROBATION": "1ms"}})
	mgr := c.Start(JobManager, "mgr-1")
	jms := []*Proc{c.Start(JobMaster, "jm-1"), c.Start(JobMaster, "jm-2")}
	c.Start(Worker, "wk-1")
	c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")

	const id = "failover"
	c.Counter(id, failoverWorkers, 1_000_000_000, 100)
	c.WaitWorkersOnline(id, failoverWorkers, 30*time.Second)
	subj, _ := c.Space.JobEvents(id)
	events := make(chan *nats.Msg, 1024)
	sub, err := c.NC.ChanSubscribe(subj, events)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	var trials []failoverTrial
	b.ResetTimer()
	for range b.N {
		j := c.Job(id)
		i := 0
		if jms[1].ID == j.Node {
			i = 1
		}
		host := jms[i]
		for len(events) > 0 {
			<-events
		}
		t0 := time.Now()
		host.Kill()
		ready := waitReady(b, events, j.Epoch, 60*time.Second)
		tr := failoverTrial{Total: ready.Time.Sub(t0)}
		if at, ok := logTime(mgr, "master assigned", id, ready.Epoch); ok {
			tr.Detect = at.Sub(t0)
		}
		for _, p := range jms {
			if took, ok := readyTook(p, id, ready.Epoch); ok {
				tr.Recover = took
			}
		}
		trials = append(trials, tr)
		b.Logf("trial %d: %s → %s ready in %s (detected %s, recovered %s)", len(trials), j.Node, ready.Node,
			tr.Total.Round(time.Millisecond), tr.Detect.Round(time.Millisecond), tr.Recover.Round(time.Millisecond))
		jms[i] = host.Restart()
		c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
		// Let the leader see the restarted node heartbeat before the next kill.
		time.Sleep(2 * c.Timing.Heartbeat)
	}
	b.StopTimer()
	if w := c.Workers(id); len(w) != failoverWorkers {
		b.Fatalf("%d workers", len(w))
	} else {
		for _, r := range w {
			if r.Epoch != 1 {
				b.Errorf("worker %s re-created (epoch %d): a failover cost a worker", r.ID, r.Epoch)
			}
		}
	}
	sum := summarize(trials)
	b.ReportMetric(sum["p50_ms"].(float64), "p50-ms")
	b.ReportMetric(sum["p99_ms"].(float64), "p99-ms")
	if *failoverOut != "" && b.N >= *failoverTrials {
		if err := mergeResults(*failoverOut, mode, sum, c.Timing); err != nil {
			b.Fatal(err)
		}
	}
}

// waitReady waits for the master_ready event of an epoch above old.
func waitReady(b *testing.B, events chan *nats.Msg, old uint64, within time.Duration) api.Event {
	deadline := time.After(within)
	for {
		select {
		case m := <-events:
			var ev api.Event
			if json.Unmarshal(m.Data, &ev) == nil && ev.Kind == api.EventMasterReady && ev.Epoch > old {
				return ev
			}
		case <-deadline:
			b.Fatalf("no master ready above epoch %d within %s", old, within)
		}
	}
}

// logTime returns the time of the process's log line msg for job at epoch.
func logTime(p *Proc, msg, job string, epoch uint64) (time.Time, bool) {
	for _, e := range p.Logs() {
		if e.Msg() == msg && e.Str("job_id") == job && uint64(e.Num("epoch")) == epoch {
			t, err := time.Parse(time.RFC3339Nano, e.Str("time"))
			return t, err == nil
		}
	}
	return time.Time{}, false
}

// readyTook returns the "took" of the master's "master ready" line.
func readyTook(p *Proc, job string, epoch uint64) (time.Duration, bool) {
	for _, e := range p.Logs() {
		if e.Msg() == "master ready" && e.Str("job_id") == job && uint64(e.Num("epoch")) == epoch {
			return time.Duration(e.Num("took") * float64(time.Second)), true
		}
	}
	return 0, false
}

func summarize(trials []failoverTrial) map[string]any {
	ms := func(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/10) / 100 }
	pick := func(f func(failoverTrial) time.Duration) []float64 {
		var out []float64
		for _, t := range trials {
			out = append(out, ms(f(t)))
		}
		sort.Float64s(out)
		return out
	}
	// Nearest-rank percentile: with 20 trials, p99 is the slowest.
	pct := func(xs []float64, p float64) float64 {
		if len(xs) == 0 {
			return 0
		}
		return xs[int(math.Ceil(p/100*float64(len(xs))))-1]
	}
	total := pick(func(t failoverTrial) time.Duration { return t.Total })
	detect := pick(func(t failoverTrial) time.Duration { return t.Detect })
	recov := pick(func(t failoverTrial) time.Duration { return t.Recover })
	mean := 0.0
	for _, x := range total {
		mean += x
	}
	var samples []float64
	for _, t := range trials {
		samples = append(samples, ms(t.Total))
	}
	return map[string]any{
		"trials": len(trials), "p50_ms": pct(total, 50), "p99_ms": pct(total, 99),
		"min_ms": total[0], "max_ms": total[len(total)-1], "mean_ms": math.Round(mean/float64(len(total))*100) / 100,
		"detect_p50_ms": pct(detect, 50), "detect_p99_ms": pct(detect, 99),
		"recover_p50_ms": pct(recov, 50), "recover_p99_ms": pct(recov, 99),
		"samples_ms": samples,
	}
}

// mergeResults writes one mode's figures into the results file, keeping
// the other mode's.
func mergeResults(path, mode string, sum map[string]any, tm Timing) error {
	return mergeResultsAs(path, mode, sum, tm,
		fmt.Sprintf("kill -9 of the job-master node hosting a running counter job with %d workers → its new master ready with every worker re-attached (master_ready event); detect = kill → leader assigns elsewhere, recover = new master start → ready", failoverWorkers),
		"go test -run '^$' -bench BenchmarkFailover -benchtime 20x ./e2e -failover.out ../bench/results/failover.json")
}

// mergeResultsAs is mergeResults for any failover benchmark: what it
// measures and the command that reproduces it.
func mergeResultsAs(path, mode string, sum map[string]any, tm Timing, what, command string) error {
	out := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &out)
	}
	modes, _ := out["modes"].(map[string]any)
	if modes == nil {
		modes = map[string]any{}
	}
	sum["measured_at"] = time.Now().UTC().Format(time.RFC3339)
	modes[mode] = sum
	out["modes"] = modes
	out["what"] = what
	out["command"] = command
	out["timing"] = map[string]string{"heartbeat": tm.Heartbeat.String(), "master_timeout": tm.MasterTimeout.String(),
		"worker_self_fence": tm.WorkerSelfFence.String(), "worker_timeout": tm.WorkerTimeout.String(), "lease_ttl": tm.LeaseTTL.String()}
	out["machine"] = map[string]any{"cpus": runtime.NumCPU(), "go": runtime.Version(), "goos": runtime.GOOS, "goarch": runtime.GOARCH}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
