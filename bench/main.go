// Command bench measures Drover against raw NATS on the same machine, in
// one run, on an embedded nats-server (JetStream, file store) on loopback:
// request/reply and KV baselines, submit throughput, end-to-end job rate
// (KV Create, submit and end-to-end again on an embedded 3-node cluster at
// replicas 3), scheduling latency, worker placement and heartbeat capacity
// (job-master and worker nodes as separate processes) at 10,000 and 100,000
// workers, 10,000 active workers, the leader with 10,000 live jobs, and
// failover of one master, of a whole node's masters and of the leader (the e2e failover benchmarks, run
// by the failover phase). It writes bench/results/latest.json and
// the table in BENCHMARKS.md. `make bench` runs it; `make bench-quick` is
// the short CI smoke form, whose figures are not for the docs.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type options struct {
	quick bool
	// quoteOnly re-quotes the failover benchmarks into the last results.
	quoteOnly   bool
	out         string
	md          string
	only        map[string]bool
	profile     bool
	conc        int
	dur         time.Duration
	runs        int
	e2eJobs     int
	e2eWindow   int
	schedJobs   int
	schedRate   float64
	workers     int
	workerNodes int
	hbWindow    time.Duration
	listJobs    int
	// hugeWorkers and hugeNodes size the scale100k phase, activeWorkers
	// the active10k phase, liveJobs the live10k phase.
	hugeWorkers, hugeNodes int
	activeWorkers          int
	liveJobs               int
	// failoverTrials and massJobs size the failover phase.
	failoverTrials int
	massJobs       int
	root           string
}

func (o *options) selected(phase string) bool { return len(o.only) == 0 || o.only[phase] }

// bigJobPath is where the bigjob phase writes its file: bench/results for
// a run whose results are latest.json, beside the results file otherwise,
// so a quick or trial run (-out elsewhere) never replaces the figures the
// docs quote (one did: a -quick -out /tmp run rewrote bigjob.json).
func (o *options) bigJobPath() string {
	def := filepath.Join(o.root, "bench", "results", "bigjob.json")
	if !o.quick && (o.out == "bench/results/latest.json" || o.out == filepath.Join(o.root, "bench", "results", "latest.json")) {
		return def
	}
	return strings.TrimSuffix(o.out, ".json") + ".bigjob.json"
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		if err := runChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 3 && os.Args[1] == countArg {
		if err := runCount(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "bench count:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	var only string
	flag.BoolVar(&o.quoteOnly, "quote", false, "run nothing: quote the failover benchmarks' files (bench/results/failover.json, leader_failover.json) anew into the last results file and table")
	flag.BoolVar(&o.quick, "quick", false, "short CI smoke run (under 2 minutes; figures not for the docs)")
	flag.StringVar(&o.out, "out", "", "results file (default bench/results/latest.json, quick: bench/results/quick.json)")
	flag.StringVar(&o.md, "md", "", "markdown file whose table is regenerated (default BENCHMARKS.md; quick or -out elsewhere: none; \"-\" for none)")
	flag.StringVar(&only, "only", "", "comma-separated phases to run: raw,submit,floor,e2e,r3,schedule,scale,scale100k,active10k,live10k,wordcount,list,bigjob,failover (default all; bigjob and failover alone re-quote the last results)")
	flag.BoolVar(&o.profile, "profile", false, "save CPU profiles of each phase under bench/results/*.prof")
	flag.IntVar(&o.conc, "conc", 64, "concurrent callers in the raw and submit phases")
	flag.DurationVar(&o.dur, "dur", 0, "duration of each raw and submit measurement (default 5s, quick 1s)")
	flag.IntVar(&o.runs, "runs", 0, "runs of each throughput measurement, the fastest kept (default 3, quick 1)")
	flag.IntVar(&o.e2eJobs, "e2e-jobs", 0, "counter jobs in the end-to-end phase (default 3000, quick 300)")
	flag.IntVar(&o.e2eWindow, "e2e-window", 256, "end-to-end jobs in flight at once")
	flag.IntVar(&o.schedJobs, "sched-jobs", 0, "jobs in the scheduling latency phase (default 1000, quick 150)")
	flag.Float64Var(&o.schedRate, "sched-rate", 100, "submissions per second in the scheduling latency phase")
	flag.IntVar(&o.workers, "workers", 0, "workers of the placement and heartbeat phase (default 10000, quick 2000)")
	flag.IntVar(&o.workerNodes, "worker-nodes", 4, "worker node processes in the placement and heartbeat phase")
	flag.DurationVar(&o.hbWindow, "hb-window", 0, "heartbeat measurement window (default 10s, quick 4s)")
	flag.IntVar(&o.hugeWorkers, "huge-workers", 0, "workers of the scale100k phase (default 100000, quick 5000)")
	flag.IntVar(&o.hugeNodes, "huge-worker-nodes", 8, "worker node processes in the scale100k phase")
	flag.IntVar(&o.activeWorkers, "active-workers", 0, "active workers of the active10k phase (default 10000, quick 1000)")
	flag.IntVar(&o.liveJobs, "live-jobs", 0, "idle jobs of the live10k phase (default 10000, quick 1000)")
	flag.IntVar(&o.listJobs, "list-jobs", 0, "jobs stored in the list phase (default 10000, quick 1000)")
	flag.IntVar(&o.failoverTrials, "failover-trials", 0, "kills per mode of one master and of the leader in the failover phase (default 10, quick 3)")
	flag.IntVar(&o.massJobs, "mass-jobs", 0, "masters on the node killed in the failover phase (default 1000, quick 100)")
	flag.Parse()

	def := func(full, quick int) int {
		if o.quick {
			return quick
		}
		return full
	}
	if o.dur == 0 {
		o.dur = time.Duration(def(5, 1)) * time.Second
	}
	if o.runs == 0 {
		o.runs = def(3, 1)
	}
	if o.e2eJobs == 0 {
		o.e2eJobs = def(3000, 300)
	}
	if o.schedJobs == 0 {
		o.schedJobs = def(1000, 150)
	}
	if o.workers == 0 {
		o.workers = def(10000, 2000)
	}
	if o.hugeWorkers == 0 {
		o.hugeWorkers = def(100000, 5000)
	}
	if o.activeWorkers == 0 {
		o.activeWorkers = def(10000, 1000)
	}
	if o.liveJobs == 0 {
		o.liveJobs = def(10000, 1000)
	}
	if o.listJobs == 0 {
		o.listJobs = def(10000, 1000)
	}
	if o.failoverTrials == 0 {
		o.failoverTrials = def(10, 3)
	}
	if o.massJobs == 0 {
		o.massJobs = def(1000, 100)
	}
	if o.hbWindow == 0 {
		o.hbWindow = time.Duration(def(10, 4)) * time.Second
	}
	if only != "" {
		o.only = map[string]bool{}
		for _, p := range strings.Split(only, ",") {
			o.only[strings.TrimSpace(p)] = true
		}
	}
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	o.root = root
	ownOut := o.out != ""
	if o.out == "" {
		o.out = "bench/results/latest.json"
		if o.quick {
			o.out = "bench/results/quick.json"
		}
	}
	// The table shows latest.json: a run writing elsewhere leaves it alone
	// unless -md names a file.
	if o.md == "" && !o.quick && !ownOut {
		o.md = "BENCHMARKS.md"
	}
	if o.md == "-" {
		o.md = ""
	}
	if err := run(&o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
