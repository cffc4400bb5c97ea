package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadFailover(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		p50, p99   float64
	}{
		{"top level", `{"failover_p50_ms": 3050, "failover_p99_ms": 3150}`, 3050, 3150},
		{"short keys", `{"p50_ms": 3000, "p99_ms": 3100, "trials": 20}`, 3000, 3100},
		{"nested, the timeout path first", `{"sys_disconnect": {"p50_ms": 90, "p99_ms": 150}, "heartbeat_timeout": {"p50_ms": 3100, "p99_ms": 3180}}`, 3100, 3180},
		{"modes", `{"modes": {"heartbeat": {"p50_ms": 2901, "p99_ms": 3002}, "sys-disconnect": {"p50_ms": 6, "p99_ms": 10}}}`, 2901, 3002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "failover.json")
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			var r results
			r.readFailover(path)
			if r.FailoverP50Ms == nil || r.FailoverP99Ms == nil || *r.FailoverP50Ms != tc.p50 || *r.FailoverP99Ms != tc.p99 {
				t.Fatalf("got p50 %v p99 %v, want %v %v", r.FailoverP50Ms, r.FailoverP99Ms, tc.p50, tc.p99)
			}
			if string(r.Failover) != tc.file {
				t.Fatal("the file is not kept whole")
			}
		})
	}
	var r results
	r.readFailover(filepath.Join(t.TempDir(), "missing.json"))
	if r.FailoverP50Ms != nil || r.FailoverP99Ms != nil {
		t.Fatal("a missing file must leave the figures null")
	}
}

func TestWriteMarkdownKeepsTheProse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	before := "# Benchmarks\n\nintro\n\n" + mdBegin + "\nold table\n" + mdEnd + "\n\n## Analysis\n\nkept\n"
	if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	v := 123.0
	if err := writeMarkdown(path, &results{SubmitJobsPerS: &v}, &env{Command: "go run ./bench"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	got := string(b)
	for _, want := range []string{"intro", "## Analysis\n\nkept\n", "| submit through the v1 API (jobs/s) | 123 |", "`go run ./bench`"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "old table") || strings.Count(got, mdBegin) != 1 {
		t.Errorf("table not replaced once:\n%s", got)
	}
}

// TestPartialRunKeepsTheOtherFigures: a run of some phases (-only list)
// replaces the figures it measured and keeps every other one of the last
// results file, with the load averages of the phases it did not run.
func TestPartialRunKeepsTheOtherFigures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latest.json")
	v := func(f float64) *float64 { return &f }
	old := &results{RawReqPerS: v(100000), RawKVCreatePerS: v(50000), ListPageP50Ms: v(50)}
	if err := old.write(path, &env{PhaseLoad: map[string]string{"raw": "1.00", "list": "2.00"}}); err != nil {
		t.Fatal(err)
	}
	e := &env{PhaseLoad: map[string]string{"list": "3.00"}}
	got, err := mergeInto(path, &results{ListPageP50Ms: v(20)}, e)
	if err != nil {
		t.Fatal(err)
	}
	if got.RawReqPerS == nil || *got.RawReqPerS != 100000 || got.ListPageP50Ms == nil || *got.ListPageP50Ms != 20 {
		t.Fatalf("merged raw %v, list %v: want the old raw figure and the new list one", got.RawReqPerS, got.ListPageP50Ms)
	}
	if e.PhaseLoad["raw"] != "1.00" || e.PhaseLoad["list"] != "3.00" || strings.Join(e.phases, ",") != "raw,list" {
		t.Fatalf("phase loads %v (%v)", e.PhaseLoad, e.phases)
	}
	// A ratio is derived from the figures the table shows: the new
	// end-to-end rate over the kept raw KV Create.
	got, err = mergeInto(path, &results{E2EJobsPerS: v(5000)}, &env{})
	if err != nil {
		t.Fatal(err)
	}
	if got.E2EToRawCreateRatio == nil || *got.E2EToRawCreateRatio != 0.1 {
		t.Fatalf("merged e2e_to_raw_kv_create_ratio %s, want 10 %%", pctOf(got.E2EToRawCreateRatio))
	}
}

// TestRatios: derive states each target as a ratio to the raw NATS figure
// (or the wordcount baseline) of the same results, and the table shows the
// ratio against the target; a ratio missing an input is null.
func TestRatios(t *testing.T) {
	v := func(f float64) *float64 { return &f }
	r := &results{RawReqPerS: v(100000), RawKVCreatePerS: v(50000), E2EJobsPerS: v(3000), PlacementsFirstPerS: v(9000),
		R3RawKVCreatePerS: v(10000), R3E2EJobsPerS: v(700), R3SubmitToRawCreateRatio: v(0.3),
		Wordcount: &wordcountFigures{BaselineMBps: 40, Runs: []wordcountRun{{WorkerNodes: 1, MBps: 20}, {WorkerNodes: 2, MBps: 36}}}}
	r.derive()
	for name, tc := range map[string]struct {
		got  *float64
		want float64
	}{
		"e2e_to_raw_kv_create_ratio":         {r.E2EToRawCreateRatio, 0.06},
		"placements_to_raw_req_ratio":        {r.PlacementsToRawReqRatio, 0.09},
		"r3_e2e_to_raw_kv_create_ratio":      {r.R3E2EToRawCreateRatio, 0.07},
		"wordcount_2nodes_to_baseline_ratio": {r.WordcountToBaselineRatio, 0.9},
	} {
		if tc.got == nil || *tc.got != tc.want {
			t.Errorf("%s = %s, want %v", name, pctOf(tc.got), tc.want)
		}
	}
	// Runs paired with a baseline count each: the median of their ratios,
	// whatever the best run over the best baseline.
	paired := &results{Wordcount: &wordcountFigures{BaselineMBps: 40, Runs: []wordcountRun{
		{WorkerNodes: 2, MBps: 36, VsBaseline: 1.05, Ratios: []float64{0.9, 1.05, 1.2}}}}}
	paired.derive()
	if got := paired.WordcountToBaselineRatio; got == nil || *got != 1.05 {
		t.Errorf("paired wordcount_2nodes_to_baseline_ratio = %s, want the runs' median 1.05", pctOf(got))
	}
	rows := map[string]row{}
	for _, rw := range r.rows() {
		rows[rw.what] = rw
	}
	for what, want := range map[string][2]string{
		"end-to-end / raw KV Create":                               {"6.0 %", "❌ ≥ 8 %"},
		"placements on fresh node processes / raw request/reply":   {"9.0 %", "✅ ≥ 8 %"},
		"submit / raw R3 KV Create (paired)":                       {"30.0 %", "✅ ≥ 25 %"},
		"end-to-end / raw R3 KV Create":                            {"7.0 %", "❌ ≥ 8 %"},
		"wordcount, 2 worker nodes / baseline":                     {"0.90×", "❌ ≥ 1.0×"},
		"raw JetStream KV Create, 3-node cluster, replicas 3 (/s)": {"10000", "baseline"},
	} {
		if got := rows[what]; got.value != want[0] || got.target != want[1] {
			t.Errorf("row %q: %q %q, want %q %q", what, got.value, got.target, want[0], want[1])
		}
	}

	// A ratio just under its target does not round onto it.
	under := &results{RawReqPerS: v(100000), PlacementsFirstPerS: v(7800)}
	under.derive()
	for _, rw := range under.rows() {
		if rw.what == "placements on fresh node processes / raw request/reply" && (rw.value != "7.8 %" || rw.target != "❌ ≥ 8 %") {
			t.Errorf("placements at 7.8 %% of raw request/reply: %q %q, want \"7.8 %%\" \"❌ ≥ 8 %%\"", rw.value, rw.target)
		}
	}

	partial := &results{E2EJobsPerS: v(3000), Wordcount: &wordcountFigures{BaselineMBps: 40, Runs: []wordcountRun{{WorkerNodes: 1, MBps: 20}}}}
	partial.derive()
	if partial.E2EToRawCreateRatio != nil || partial.WordcountToBaselineRatio != nil {
		t.Errorf("ratios %s %s without their raw figure or 2-node run, want null", pctOf(partial.E2EToRawCreateRatio), pctOf(partial.WordcountToBaselineRatio))
	}
}

// TestLoadFigures derives the scale100k and active10k figures from two
// snapshots 10 s apart.
func TestLoadFigures(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s0 := snapshot{at: at, master: procStat{ticks: 1000}, workers: 5000, self: 200, msgs: 1_000_000}
	s1 := snapshot{at: at.Add(10 * time.Second), master: procStat{ticks: 1500, rss: 900}, workers: 6000, self: 700, msgs: 5_000_000}
	v := func(f float64) *float64 { return &f }
	f := &loadFigures{Workers: 10000, Online: 10000}
	f.window(s0, s1, 150_000)
	f.KeepUp = keepUp(f.StateWritesPerS, f.Workers, time.Second)
	for name, c := range map[string]struct {
		got  *float64
		want float64
	}{
		"window":  {f.WindowSeconds, 10},
		"master":  {f.MasterCores, 0.5}, // 500 ticks of 10 ms in 10 s
		"workers": {f.WorkerCores, 1},
		"server":  {f.ServerCores, 0.5},
		"msgs":    {f.NatsMsgsPerS, 400_000},
		"writes":  {f.StateWritesPerS, 15_000},
		"keep up": {f.KeepUp, 0.75}, // 2 writes per worker per second asked
		// 7,500 status updates written (half the writes), 6,000 handled.
		"master keep up": {masterKeepUp(v(6000), f.StateWritesPerS), 0.8},
		"per worker":     {perEach(1_000_000, 51_000_000, 10000), 5000},
		"GC returned":    {perEach(2_000_000, 1_000_000, 1000), -1000},
	} {
		if c.got == nil || *c.got != c.want {
			t.Errorf("%s: got %v, want %v", name, c.got, c.want)
		}
	}
	if !f.healthy() {
		t.Error("every worker online, none lost: healthy")
	}
	for _, bad := range []loadFigures{{Workers: 10, Online: 9}, {Workers: 10, Online: 10, Recreated: 1}, {Workers: 10, Online: 10, Offline: 1}, {Workers: 10, Online: 10, MasterEpoch: 2}} {
		if bad.healthy() {
			t.Errorf("%+v is not healthy", bad)
		}
	}
	if keepUp(nil, 10, time.Second) != nil || masterKeepUp(v(1), v(0)) != nil {
		t.Error("no writes measured: no keep-up figure")
	}
}

func TestLiveFigures(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &liveFigures{Jobs: 10000}
	f.window(procStat{rss: 20_000_000}, procStat{ticks: 100}, procStat{ticks: 120, rss: 70_000_000},
		procStat{rss: 10_000_000}, snapshot{at: at, master: procStat{ticks: 50}, self: 10},
		snapshot{at: at.Add(10 * time.Second), master: procStat{ticks: 150, rss: 110_000_000}, self: 30})
	for name, c := range map[string]struct {
		got  *float64
		want float64
	}{
		"leader cores":   {f.LeaderCores, 0.02},
		"leader rss":     {f.LeaderRSS, 70_000_000},
		"no jobs":        {f.LeaderRSSNoJobs, 20_000_000},
		"leader per job": {f.LeaderBytesPerJob, 5000},
		"master cores":   {f.MasterCores, 0.1},
		"master per job": {f.MasterBytesPerJob, 10000},
		"server":         {f.ServerCores, 0.02},
	} {
		if c.got == nil || *c.got != c.want {
			t.Errorf("%s: got %v, want %v", name, c.got, c.want)
		}
	}
}

// TestScaleRows: the table shows the scale figures with their verdicts,
// and dashes without a verdict for phases that did not run.
func TestScaleRows(t *testing.T) {
	v := func(f float64) *float64 { return &f }
	table := func(r *results) string {
		var b strings.Builder
		for _, row := range scaleRows(r) {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", row.what, row.value, row.target)
		}
		return b.String()
	}
	got := table(&results{
		Placements100kPerS: v(5200), HB100kMasterCores: v(1.25), HB100kMemBytesPerWorker: v(41000),
		Scale100k:            &loadFigures{Workers: 100000, WorkerNodes: 8, Online: 100000, Recreated: 3, MasterEpoch: 1},
		Active10kMasterCores: v(0.8),
		Active10k:            &loadFigures{Workers: 10000, Online: 10000, KeepUp: v(0.6), MasterStatusesPerS: v(5940), MasterKeepUp: v(0.99), MasterEpoch: 1},
		Live10kLeaderCores:   v(0.05), Live10kLeaderRSS: v(90e6),
		Live10k: &liveFigures{Jobs: 10000, Live: 10000, LeaderRSSNoJobs: v(20e6), LeaderBytesPerJob: v(7000)},
	})
	for _, want := range []string{
		"| placements/s (100000 workers of one job on 8 worker nodes, fresh node processes) | 5200 | ❌ no worker lost: 100000 of 100000 online, 0 offline, 3 re-created, master epoch 1 |",
		"| job-master node CPU (100000 workers, 1 s heartbeat, cores) | 1.250 |",
		"| worker node RSS per worker (100000 workers, bytes) | 41000 |",
		"| 0.800 | ✅ the master keeps up: it handled 99.0 % of the status updates written (5940/s), 0 offline, 0 re-created, master epoch 1; the writes were 60.0 % of those asked; worker nodes —",
		"| leading job manager CPU (10000 live idle jobs, cores) | 0.050 | ✅ 10000 of 10000 live; job-master node — |",
		"| leading job manager RSS (10000 live jobs, bytes) | 90000000 | 20 MB with no job, 7000 B per job |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	empty := table(&results{})
	if strings.Contains(empty, "✅") || strings.Contains(empty, "❌") || !strings.Contains(empty, "(100000 workers of one job on 8 worker nodes, fresh node processes) | — |") {
		t.Errorf("phases that did not run: dashes and no verdict:\n%s", empty)
	}
}

// TestPlacedEndsOnCollapse: a placement whose master failed over ends at
// once with the count, without waiting for its bound.
func TestPlacedEndsOnCollapse(t *testing.T) {
	tr := &tracker{jobs: map[string]*jobTimes{}}
	jt := tr.expect("j")
	jt.onlines, jt.masterEpoch = 7, 2
	err := placed(tr, jt, make(chan struct{}), 10, time.Hour)
	if err == nil || !strings.Contains(err.Error(), "failed over (epoch 2) with 7 of 10") {
		t.Fatalf("got %v, want the master's failover", err)
	}
	jt.masterEpoch, jt.offlines = 1, 3
	if err := placed(tr, jt, make(chan struct{}), 10, time.Hour); err == nil || !strings.Contains(err.Error(), "3 workers went offline") {
		t.Fatalf("got %v, want the workers gone offline", err)
	}
	done := make(chan struct{})
	close(done)
	if err := placed(tr, jt, done, 10, time.Hour); err != nil {
		t.Fatalf("every worker online: %v", err)
	}
}

// TestScaleHeadlinesFollowTheirDetails: a partial run whose scale100k
// phase collapsed (details with null figures) replaces the headline of the
// last results; the other phases' headlines come from their details.
func TestScaleHeadlinesFollowTheirDetails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latest.json")
	v := func(f float64) *float64 { return &f }
	old := &results{Scale100k: &loadFigures{Workers: 100000, Online: 100000, PlacementsPerS: v(5000), MasterCores: v(1.5)},
		Live10k: &liveFigures{Jobs: 10000, LeaderCores: v(0.2), LeaderRSS: v(6e7)}}
	old.derive()
	if old.Placements100kPerS == nil || *old.Placements100kPerS != 5000 || *old.HB100kMasterCores != 1.5 || *old.Live10kLeaderRSS != 6e7 {
		t.Fatalf("headlines not taken from the details: %v %v %v", old.Placements100kPerS, old.HB100kMasterCores, old.Live10kLeaderRSS)
	}
	if err := old.write(path, &env{PhaseLoad: map[string]string{"scale100k": "1.00", "live10k": "1.00"}}); err != nil {
		t.Fatal(err)
	}
	got, err := mergeInto(path, &results{Scale100k: &loadFigures{Workers: 100000, Online: 29244, Offline: 3024}},
		&env{PhaseLoad: map[string]string{"scale100k": "9.00"}})
	if err != nil {
		t.Fatal(err)
	}
	got.derive()
	if got.Placements100kPerS != nil || got.HB100kMasterCores != nil || got.Scale100k.Online != 29244 {
		t.Fatalf("collapsed scale100k: headlines %v %v, online %d; want null headlines and the new details",
			got.Placements100kPerS, got.HB100kMasterCores, got.Scale100k.Online)
	}
	if got.Live10kLeaderCores == nil || *got.Live10kLeaderCores != 0.2 {
		t.Fatalf("live10k did not run: its headline stays, got %v", got.Live10kLeaderCores)
	}
}

// TestBigJobFileOfATrialRunStaysBesideIt: only a run writing latest.json
// writes bench/results/bigjob.json; a quick run or one with -out elsewhere
// writes beside its own results file.
func TestBigJobFileOfATrialRunStaysBesideIt(t *testing.T) {
	root := t.TempDir()
	def := filepath.Join(root, "bench", "results", "bigjob.json")
	for _, c := range []struct {
		o    options
		want string
	}{
		{options{root: root, out: "bench/results/latest.json"}, def},
		{options{root: root, out: "/tmp/x.json"}, "/tmp/x.bigjob.json"},
		{options{root: root, quick: true, out: "bench/results/quick.json"}, "bench/results/quick.bigjob.json"},
	} {
		if got := c.o.bigJobPath(); got != c.want {
			t.Errorf("out %q quick %v: %s, want %s", c.o.out, c.o.quick, got, c.want)
		}
	}
}
