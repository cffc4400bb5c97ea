package e2e

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/pkg/api"
)

var (
	massJobs    = flag.Int("mass.jobs", 1000, "running masters on the job-master node killed by BenchmarkMassFailover")
	massWorkers = flag.Int("mass.workers", 2, "workers of each job of BenchmarkMassFailover")
	massOut     = flag.String("mass.out", "", "write BenchmarkMassFailover's figures as JSON to this file (merged per mode)")
	massTick    = flag.Duration("mass.tick", time.Second, "how often each worker of BenchmarkMassFailover counts (a business-KV write and a status write per step)")
)

// BenchmarkMassFailover kills (SIGKILL) a job-master node hosting every
// master of -mass.jobs running counter jobs (-mass.workers workers each)
// and measures, per job, the crash → its new master's master_ready event
// (ready: every live worker re-attached), p50/p99/max and the time until
// the last one; every worker must keep its epoch (none re-created). One
// kill per mode:
//
//	go test -run '^$' -bench BenchmarkMassFailover -benchtime 1x -timeout 30m ./e2e -mass.jobs 1000 -mass.out ../bench/results/mass_failover.json
//
// Modes as BenchmarkFailover: sys-disconnect (the leader follows $SYS
// disconnect events) and heartbeat (the node's silence for the master
// timeout).
func BenchmarkMassFailover(b *testing.B) {
	b.Run("sys-disconnect", func(b *testing.B) { benchMassFailover(b, "sys-disconnect", true) })
	b.Run("heartbeat", func(b *testing.B) { benchMassFailover(b, "heartbeat", false) })
}

func benchMassFailover(b *testing.B, mode string, system bool) {
	n, w := *massJobs, *massWorkers
	c := NewCluster(b, Options{Timing: DefaultTiming(), System: system,
		Env: map[string]string{"DROVER_CAPACITY": fmt.Sprint(max(n, n*w))}})
	mgr := c.Start(JobManager, "mgr-1")
	jm1 := c.Start(JobMaster, "jm-1")
	wk1 := c.Start(Worker, "wk-1")
	wk2 := c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")

	var mu sync.Mutex
	online := map[string]map[string]bool{} // job → workers online under the first master
	ready := map[string]time.Time{}        // job → its epoch-2 master's master_ready
	sub, err := c.NC.Subscribe(c.Space.JobEventsPattern(), func(m *nats.Msg) {
		var ev api.Event
		if json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case ev.Kind == api.EventWorkerOnline && ev.Epoch == 1:
			if online[ev.Job] == nil {
				online[ev.Job] = map[string]bool{}
			}
			online[ev.Job][ev.Worker] = true
		case ev.Kind == api.EventMasterReady && ev.Epoch >= 2:
			if _, ok := ready[ev.Job]; !ok {
				ready[ev.Job] = ev.Time
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1)

	// Every master on jm-1 (the only job-master node), its workers online.
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("mass%05d", i)
		c.Counter(ids[i], w, 1_000_000_000, int(massTick.Milliseconds()))
	}
	c.Eventually(time.Duration(n)*c.Timing.AssignTimeout/10+time.Minute, fmt.Sprintf("%d jobs with %d workers online each", n, w), func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if len(online[id]) != w {
				return false
			}
		}
		return true
	})
	// The failover target, started once everything runs on jm-1.
	jm2 := c.Start(JobMaster, "jm-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
	// The CPU each process spends from the crash to the last master ready:
	// what a moved master costs, and where (the NATS server runs in this
	// process). Before the crash, the same processes' steady load with
	// everything running (jm-1 hosting what jm-2 will): the part of the
	// window's CPU the running jobs would have used anyway.
	procsOf := func(node *Proc) map[string]func() time.Duration {
		return map[string]func() time.Duration{
			"job_manager": func() time.Duration { return procCPU(mgr.Pid()) },
			"new_node":    func() time.Duration { return procCPU(node.Pid()) },
			"worker_nodes": func() time.Duration {
				return procCPU(wk1.Pid()) + procCPU(wk2.Pid())
			},
			"nats_server_and_bench": selfCPU,
		}
	}
	procs := procsOf(jm2)
	steady0, steadyAt := map[string]time.Duration{}, time.Now()
	for k, f := range procsOf(jm1) {
		steady0[k] = f()
	}
	// The leader has seen jm-2's heartbeat after this.
	time.Sleep(2 * c.Timing.Heartbeat)
	steadyFor := time.Since(steadyAt)
	steady := map[string]float64{} // cores; new_node: jm-1 hosting what jm-2 will
	steadyCores := 0.0
	for k, f := range procsOf(jm1) {
		steady[k] = float64(f()-steady0[k]) / float64(steadyFor)
		steadyCores += steady[k]
	}

	cpu0 := map[string]time.Duration{}
	for k, f := range procs {
		cpu0[k] = f()
	}

	b.ResetTimer()
	t0 := time.Now()
	jm1.Kill()
	bound := c.Timing.MasterTimeout + time.Duration(n)*c.Timing.AssignTimeout/10 + time.Minute
	c.Eventually(bound, fmt.Sprintf("%d masters ready on jm-2", n), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ready) == n
	})
	b.StopTimer()
	window := time.Since(t0)
	cpuMs := map[string]float64{}
	total := time.Duration(0)
	for k, f := range procs {
		d := f() - cpu0[k]
		total += d
		cpuMs[k] = float64(d.Microseconds()) / 1000
	}

	took := make([]float64, 0, n)
	mu.Lock()
	for _, at := range ready {
		took = append(took, float64(at.Sub(t0).Microseconds())/1000)
	}
	mu.Unlock()
	sort.Float64s(took)
	pct := func(p float64) float64 { return took[int(math.Ceil(p/100*float64(len(took))))-1] }
	recreated := 0
	for _, id := range ids {
		for _, r := range c.Workers(id) {
			if r.Epoch != 1 {
				recreated++
			}
		}
	}
	assigned := 0
	for _, e := range mgr.Logs() {
		if e.Msg() == "master assigned" && e.Str("reason") != "first" {
			assigned++
		}
	}
	// What the move itself cost beyond the steady load of the same window.
	moveMs := (float64(total) - steadyCores*float64(window)) / float64(time.Millisecond) / float64(n)
	for k := range steady {
		steady[k] = math.Round(steady[k]*1000) / 1000
	}
	sum := map[string]any{"jobs": n, "workers_per_job": w, "p50_ms": pct(50), "p99_ms": pct(99),
		"max_ms": took[len(took)-1], "last_ms": took[len(took)-1], "first_ms": took[0],
		"workers_recreated": recreated, "reassigned": assigned,
		"cpu_ms": cpuMs, "cpu_ms_per_master": math.Round(float64(total.Microseconds())/float64(n)) / 1000,
		"cores_busy":   math.Round(float64(total)/float64(window)*100) / 100,
		"steady_cores": steady, "move_cpu_ms_per_master": math.Round(moveMs*1000) / 1000}
	b.Logf("%s: %d masters moved; crash → ready p50 %.0f ms, p99 %.0f ms, first %.0f ms, last %.0f ms; %d workers re-created; CPU %.2f ms per master (%v), %.2f cores busy, of which the move %.2f ms per master beyond the steady load (%v cores; new_node: the doomed node hosting them before the crash)",
		mode, n, pct(50), pct(99), took[0], took[len(took)-1], recreated, sum["cpu_ms_per_master"], cpuMs, sum["cores_busy"], moveMs, steady)
	b.ReportMetric(pct(99), "p99-ms")
	b.ReportMetric(took[len(took)-1], "last-ms")
	if recreated > 0 {
		b.Errorf("%d workers re-created by the failover", recreated)
	}
	if *massOut != "" {
		if err := mergeResultsAs(*massOut, mode, sum, c.Timing,
			fmt.Sprintf("kill -9 of a job-master node hosting %d running masters (counter jobs of %d workers) → each job's new master ready with its workers re-attached (master_ready event), per job, and the last one", n, w),
			fmt.Sprintf("go test -run '^$' -bench BenchmarkMassFailover -benchtime 1x -timeout 30m ./e2e -mass.jobs %d -mass.out FILE", n)); err != nil {
			b.Fatal(err)
		}
	}
}

// procCPU is the user and system CPU time process pid used so far (Linux;
// 0 where /proc does not say).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration { return procCPU(os.Getpid()) }
