package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// results is latest.json: the keys the benchmark issue lists first, then
// the extras that explain them. A figure not measured in a run is null.
type results struct {
	RawReqPerS             *float64 `json:"raw_req_per_s"`
	RawKVCreatePerS        *float64 `json:"raw_kv_create_per_s"`
	RawKVUpdatePerS        *float64 `json:"raw_kv_update_per_s"`
	SubmitJobsPerS         *float64 `json:"submit_jobs_per_s"`
	E2EJobsPerS            *float64 `json:"e2e_jobs_per_s"`
	ScheduleP50Ms          *float64 `json:"schedule_p50_ms"`
	ScheduleP99Ms          *float64 `json:"schedule_p99_ms"`
	PlacementsPerS         *float64 `json:"placements_per_s"`
	HBMasterCores          *float64 `json:"hb10k_master_cores"`
	HBWorkerCores          *float64 `json:"hb10k_worker_cores"`
	HBMemBytesPerWorker    *float64 `json:"hb10k_mem_bytes_per_worker"`
	FailoverP50Ms          *float64 `json:"failover_p50_ms"`
	FailoverP99Ms          *float64 `json:"failover_p99_ms"`
	SubmitToRawCreateRatio *float64 `json:"submit_to_raw_kv_create_ratio"`
	// Each target as a ratio to raw NATS (or the wordcount baseline) of
	// the same results; the r3 phase's to raw KV Create on its cluster.
	E2EToRawCreateRatio      *float64 `json:"e2e_to_raw_kv_create_ratio"`
	PlacementsToRawReqRatio  *float64 `json:"placements_to_raw_req_ratio"`
	WordcountToBaselineRatio *float64 `json:"wordcount_2nodes_to_baseline_ratio"`
	R3RawKVCreatePerS        *float64 `json:"r3_raw_kv_create_per_s"`
	R3SubmitToRawCreateRatio *float64 `json:"r3_submit_to_raw_kv_create_ratio"`
	R3E2EToRawCreateRatio    *float64 `json:"r3_e2e_to_raw_kv_create_ratio"`
	R3SubmitJobsPerS         *float64 `json:"r3_submit_jobs_per_s,omitempty"`
	R3E2EJobsPerS            *float64 `json:"r3_e2e_jobs_per_s,omitempty"`
	R3E2ELatencyP99Ms        *float64 `json:"r3_e2e_latency_p99_ms,omitempty"`
	// The floor phase: raw NATS making only a job's writes (and a submit's
	// request), the ceiling of the figure beside it; ratios paired.
	E2EFloorJobsPerS    *float64 `json:"e2e_write_floor_jobs_per_s,omitempty"`
	E2EFloorRatio       *float64 `json:"e2e_write_floor_to_raw_kv_create_ratio,omitempty"`
	SubmitFloorJobsPerS *float64 `json:"submit_write_floor_jobs_per_s,omitempty"`
	SubmitFloorRatio    *float64 `json:"submit_write_floor_to_raw_kv_create_ratio,omitempty"`
	// The CPU time of the whole bench process per operation (server,
	// services and callers), in µs: figures that the shared machine's
	// load does not skew, unlike the rates.
	RawReqCPUUs      *float64 `json:"raw_req_cpu_us,omitempty"`
	RawKVCreateCPUUs *float64 `json:"raw_kv_create_cpu_us,omitempty"`
	RawKVUpdateCPUUs *float64 `json:"raw_kv_update_cpu_us,omitempty"`
	SubmitCPUUs      *float64 `json:"submit_cpu_us,omitempty"`
	// The messages per submitted job (leader at work) that the server
	// received from the job manager and delivered to it.
	SubmitMsgsSentPerJob     *float64 `json:"submit_msgs_sent_per_job,omitempty"`
	SubmitMsgsReceivedPerJob *float64 `json:"submit_msgs_received_per_job,omitempty"`
	// The API path alone: the lease is held elsewhere, nothing is scheduled.
	SubmitAPIOnlyJobsPerS *float64 `json:"submit_api_only_jobs_per_s,omitempty"`
	SubmitAPIOnlyCPUUs    *float64 `json:"submit_api_only_cpu_us,omitempty"`
	SubmitAPIOnlyRatio    *float64 `json:"submit_api_only_to_raw_kv_create_ratio,omitempty"`
	E2ECPUUs              *float64 `json:"e2e_cpu_us_per_job,omitempty"`
	// SubmitToRawCreateCPURatio is raw KV Create's CPU cost over submit's:
	// the submit/Create rate ratio on an otherwise idle machine.
	SubmitToRawCreateCPURatio *float64 `json:"submit_to_raw_kv_create_cpu_ratio,omitempty"`
	E2ELatencyP50Ms           *float64 `json:"e2e_latency_p50_ms,omitempty"`
	E2ELatencyP99Ms           *float64 `json:"e2e_latency_p99_ms,omitempty"`
	// The messages per end-to-end job that the server received from the
	// job manager and the nodes, and delivered to them.
	E2EMsgsSentPerJob     *float64 `json:"e2e_msgs_sent_per_job,omitempty"`
	E2EMsgsReceivedPerJob *float64 `json:"e2e_msgs_received_per_job,omitempty"`
	ScheduleMaxMs         *float64 `json:"schedule_max_ms,omitempty"`
	ScheduleRunningP50Ms  *float64 `json:"schedule_running_p50_ms,omitempty"`
	ScheduleRunningP99Ms  *float64 `json:"schedule_running_p99_ms,omitempty"`
	ScheduleRunningMaxMs  *float64 `json:"schedule_running_max_ms,omitempty"`
	ScheduleRatePerS      *float64 `json:"schedule_rate_per_s,omitempty"`
	PlacementWorkers      int      `json:"placement_workers,omitempty"`
	PlacementWorkerNodes  int      `json:"placement_worker_nodes,omitempty"`
	PlacementSeconds      *float64 `json:"placement_seconds,omitempty"`
	// PlacementsFirstPerS is the fastest placement on fresh node processes
	// (each run on new ones).
	PlacementsFirstPerS *float64 `json:"placements_per_s_fresh_nodes,omitempty"`
	HBWorkers           int      `json:"hb_workers,omitempty"`
	HBWindowSeconds     *float64 `json:"hb_window_seconds,omitempty"`
	HBServerCores       *float64 `json:"hb10k_server_cores,omitempty"`
	HBNatsMsgsPerS      *float64 `json:"hb10k_nats_msgs_per_s,omitempty"`
	// HBMasterMemBytesPerWorker is the job-master node's growth per worker.
	HBMasterMemBytesPerWorker *float64 `json:"hb10k_master_mem_bytes_per_worker,omitempty"`
	// The failover benchmark's $SYS disconnect mode, if it measured one.
	FailoverDisconnectP50Ms *float64        `json:"failover_sys_disconnect_p50_ms,omitempty"`
	FailoverDisconnectP99Ms *float64        `json:"failover_sys_disconnect_p99_ms,omitempty"`
	Failover                json.RawMessage `json:"failover,omitempty"`
	// The leader failover benchmark: kill -9 of the leading job manager →
	// the first job scheduled by the new leader, on a $SYS disconnect event
	// (the headline) and on the lease TTL.
	LeaderFailoverP50Ms    *float64        `json:"leader_failover_p50_ms,omitempty"`
	LeaderFailoverP99Ms    *float64        `json:"leader_failover_p99_ms,omitempty"`
	LeaderFailoverTTLP50Ms *float64        `json:"leader_failover_lease_ttl_p50_ms,omitempty"`
	LeaderFailoverTTLP99Ms *float64        `json:"leader_failover_lease_ttl_p99_ms,omitempty"`
	LeaderFailover         json.RawMessage `json:"leader_failover,omitempty"`
	// The mass failover benchmark: kill -9 of a job-master node hosting
	// MassFailoverJobs masters → each new master ready; the last one.
	MassFailoverJobs     *float64          `json:"mass_failover_jobs,omitempty"`
	MassFailoverSysP50Ms *float64          `json:"mass_failover_sys_p50_ms,omitempty"`
	MassFailoverSysP99Ms *float64          `json:"mass_failover_sys_p99_ms,omitempty"`
	MassFailoverSysLast  *float64          `json:"mass_failover_sys_last_ms,omitempty"`
	MassFailoverHBP50Ms  *float64          `json:"mass_failover_hb_p50_ms,omitempty"`
	MassFailoverHBP99Ms  *float64          `json:"mass_failover_hb_p99_ms,omitempty"`
	MassFailoverHBLast   *float64          `json:"mass_failover_hb_last_ms,omitempty"`
	MassFailover         json.RawMessage   `json:"mass_failover,omitempty"`
	Wordcount            *wordcountFigures `json:"wordcount,omitempty"`
	// The list API with ListJobs jobs stored (the list phase).
	ListJobs      int      `json:"list_jobs,omitempty"`
	ListPageP50Ms *float64 `json:"list_page_p50_ms,omitempty"`
	ListPageP99Ms *float64 `json:"list_page_p99_ms,omitempty"`
	ListOneP50Ms  *float64 `json:"list_limit1_p50_ms,omitempty"`
	ListNoneP50Ms *float64 `json:"list_filter_none_p50_ms,omitempty"`
	ListWalkMs    *float64 `json:"list_every_page_ms,omitempty"`
	// The bigjob phase (bench/results/bigjob.json): the largest counter
	// job the make run topology finishes with no worker re-created.
	LargestJobNoRecreate *int            `json:"largest_job_no_recreate_workers,omitempty"`
	BigJob               json.RawMessage `json:"bigjob,omitempty"`
	// The scale100k, active10k and live10k phases (bench/scaleout.go).
	Placements100kPerS      *float64     `json:"placements_100k_per_s"`
	HB100kMasterCores       *float64     `json:"hb100k_master_cores"`
	HB100kMemBytesPerWorker *float64     `json:"hb100k_mem_bytes_per_worker,omitempty"`
	Active10kMasterCores    *float64     `json:"active10k_master_cores"`
	Live10kLeaderCores      *float64     `json:"live10k_leader_cores"`
	Live10kLeaderRSS        *float64     `json:"live10k_leader_rss_bytes"`
	Scale100k               *loadFigures `json:"scale100k,omitempty"`
	Active10k               *loadFigures `json:"active10k,omitempty"`
	Live10k                 *liveFigures `json:"live10k,omitempty"`
	Env                     *env         `json:"env,omitempty"`
}

// failoverMode is one mode's figures in a failover benchmark's file.
type failoverMode struct {
	path           string
	p50, p99, last *float64
	jobs           *float64
}

// readModes reads a failover benchmark's file and the modes in it: every
// object with a p99 figure, named by its path. A missing or unreadable
// file, or one without figures, is logged and gives nothing.
func readModes(path string) ([]byte, []failoverMode) {
	b, err := os.ReadFile(path)
	if err != nil {
		logf("no %s: its figures left null", filepath.Base(path))
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		logf("%s unreadable: %v", path, err)
		return nil, nil
	}
	pick := func(m map[string]any, keys ...string) *float64 {
		for _, k := range keys {
			if v, ok := m[k].(float64); ok {
				return &v
			}
		}
		return nil
	}
	var modes []failoverMode
	var walk func(path string, m map[string]any)
	walk = func(path string, m map[string]any) {
		if p99 := pick(m, "failover_p99_ms", "p99_ms", "p99"); p99 != nil {
			modes = append(modes, failoverMode{path, pick(m, "failover_p50_ms", "p50_ms", "p50"), p99,
				pick(m, "last_ms"), pick(m, "jobs")})
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if sub, ok := m[k].(map[string]any); ok {
				walk(strings.TrimPrefix(path+"."+k, "."), sub)
			}
		}
	}
	walk("", m)
	if len(modes) == 0 {
		logf("%s has no p50/p99 figures", filepath.Base(path))
		return nil, nil
	}
	return b, modes
}

// readFailover quotes the failover benchmark's figures (issue 3), which
// has its own program; a missing file leaves them null. The p50/p99 are
// taken from the top level or else from the nested object whose path names
// the heartbeat timeout (the default deployment's failover path), else the
// first one; a $SYS disconnect mode, if measured, is quoted beside. The
// whole file is kept under "failover".
func (r *results) readFailover(path string) {
	b, modes := readModes(path)
	if modes == nil {
		return
	}
	r.Failover = b
	main := modes[0]
	for _, md := range modes {
		if md.path == "" || strings.Contains(md.path, "heartbeat") || strings.Contains(md.path, "timeout") {
			main = md
			break
		}
	}
	r.FailoverP50Ms, r.FailoverP99Ms = main.p50, main.p99
	for _, md := range modes {
		if strings.Contains(md.path, "disconnect") {
			r.FailoverDisconnectP50Ms, r.FailoverDisconnectP99Ms = md.p50, md.p99
		}
	}
	logf("failover figures from %s (%s)", filepath.Base(path), main.path)
}

// readLeaderFailover quotes the leader failover benchmark's figures (an
// e2e benchmark of its own): the $SYS disconnect mode as the headline, the
// lease TTL mode beside it. The whole file is kept under "leader_failover".
func (r *results) readLeaderFailover(path string) {
	b, modes := readModes(path)
	if modes == nil {
		return
	}
	r.LeaderFailover = b
	for _, md := range modes {
		switch {
		case strings.Contains(md.path, "disconnect"):
			r.LeaderFailoverP50Ms, r.LeaderFailoverP99Ms = md.p50, md.p99
		case strings.Contains(md.path, "ttl"):
			r.LeaderFailoverTTLP50Ms, r.LeaderFailoverTTLP99Ms = md.p50, md.p99
		}
	}
	logf("leader failover figures from %s", filepath.Base(path))
}

// readMassFailover reads the mass failover benchmark's figures: per mode,
// p50/p99 over the jobs and the last one ready. The whole file is kept
// under "mass_failover".
func (r *results) readMassFailover(path string) {
	b, modes := readModes(path)
	if modes == nil {
		return
	}
	r.MassFailover = b
	for _, md := range modes {
		switch {
		case strings.Contains(md.path, "disconnect"):
			r.MassFailoverSysP50Ms, r.MassFailoverSysP99Ms, r.MassFailoverSysLast = md.p50, md.p99, md.last
		case strings.Contains(md.path, "heartbeat"):
			r.MassFailoverHBP50Ms, r.MassFailoverHBP99Ms, r.MassFailoverHBLast = md.p50, md.p99, md.last
		}
		r.MassFailoverJobs = md.jobs
	}
	logf("mass failover figures from %s", filepath.Base(path))
}

func (r *results) derive() {
	// The submit phase sets the ratios from runs paired with raw KV Create
	// runs under the same load; these are for a run without that phase's.
	if r.SubmitToRawCreateRatio == nil && r.SubmitJobsPerS != nil && r.RawKVCreatePerS != nil && *r.RawKVCreatePerS > 0 {
		r.SubmitToRawCreateRatio = round3(*r.SubmitJobsPerS / *r.RawKVCreatePerS)
	}
	if r.SubmitAPIOnlyRatio == nil && r.SubmitAPIOnlyJobsPerS != nil && r.RawKVCreatePerS != nil && *r.RawKVCreatePerS > 0 {
		r.SubmitAPIOnlyRatio = round3(*r.SubmitAPIOnlyJobsPerS / *r.RawKVCreatePerS)
	}
	if r.SubmitCPUUs != nil && r.RawKVCreateCPUUs != nil && *r.SubmitCPUUs > 0 {
		r.SubmitToRawCreateCPURatio = round3(*r.RawKVCreateCPUUs / *r.SubmitCPUUs)
	}
	ratio := func(a, b *float64) *float64 {
		if a == nil || b == nil || *b <= 0 {
			return nil
		}
		return round3(*a / *b)
	}
	r.E2EToRawCreateRatio = ratio(r.E2EJobsPerS, r.RawKVCreatePerS)
	r.PlacementsToRawReqRatio = ratio(r.PlacementsFirstPerS, r.RawReqPerS)
	r.R3E2EToRawCreateRatio = ratio(r.R3E2EJobsPerS, r.R3RawKVCreatePerS)
	r.deriveScale()
	if w := r.Wordcount; w != nil {
		for _, run := range w.Runs {
			if run.WorkerNodes == 2 {
				r.WordcountToBaselineRatio = pairedWordcountRatio(run, w.BaselineMBps)
			}
		}
	}
	for _, p := range []**float64{&r.RawReqPerS, &r.RawKVCreatePerS, &r.RawKVUpdatePerS, &r.SubmitJobsPerS,
		&r.E2EJobsPerS, &r.PlacementsPerS} {
		if *p != nil {
			*p = round0(**p)
		}
	}
}

func (r *results) write(path string, e *env) error {
	r.Env = e
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func (r *results) print(w io.Writer) {
	for _, row := range r.rows() {
		fmt.Fprintf(w, "%-48s %12s   %s\n", row.what, row.value, row.target)
	}
}

type row struct{ what, value, target string }

func (r *results) rows() []row {
	f := func(v *float64, format string) string {
		if v == nil {
			return "—"
		}
		return fmt.Sprintf(format, *v)
	}
	target := func(ok bool, text string) string {
		if ok {
			return "✅ " + text
		}
		return "❌ " + text
	}
	ge := func(v *float64, t float64) bool { return v != nil && *v >= t }
	lt := func(v *float64, t float64) bool { return v != nil && *v < t }
	ratio := pctOf(r.SubmitToRawCreateRatio)
	nodes := fmt.Sprintf("%d workers on %d worker nodes", r.PlacementWorkers, r.PlacementWorkerNodes)
	hb := fmt.Sprintf("%d workers, 1 s heartbeat", r.HBWorkers)
	rows := []row{
		{"raw NATS request/reply (round trips/s)", f(r.RawReqPerS, "%.0f"), "baseline"},
		{"raw JetStream KV Create (/s)", f(r.RawKVCreatePerS, "%.0f"), "baseline"},
		{"raw JetStream KV CAS Update (/s)", f(r.RawKVUpdatePerS, "%.0f"), "baseline"},
		{"submit through the v1 API (jobs/s)", f(r.SubmitJobsPerS, "%.0f"), target(ge(r.SubmitJobsPerS, 2000), "≥ 2,000")},
		{"submit / raw KV Create (median of runs paired under the same load)", ratio, target(ge(r.SubmitToRawCreateRatio, 0.25), "≥ 25 %")},
		{"raw NATS making only a submit's messages and 3 writes / raw KV Create (paired): the ceiling of the line above", pctOf(r.SubmitFloorRatio), ""},
		{"messages per submitted job sent / received by the job manager (leader at work)", msgsPair(r.SubmitMsgsSentPerJob, r.SubmitMsgsReceivedPerJob),
			"the floor's: 4 / 3 (the answer, 3 writes / the request, the record's acknowledgement, the watch)"},
		{"submit, API path alone (jobs/s; leader elsewhere)", f(r.SubmitAPIOnlyJobsPerS, "%.0f"), ""},
		{"API path alone / raw KV Create (paired)", pctOf(r.SubmitAPIOnlyRatio), target(ge(r.SubmitAPIOnlyRatio, 0.25), "≥ 25 %")},
		{"end-to-end counter jobs (jobs/s)", f(r.E2EJobsPerS, "%.0f"), target(ge(r.E2EJobsPerS, 500), "≥ 500")},
		{"end-to-end / raw KV Create", pctOf(r.E2EToRawCreateRatio), target(ge(r.E2EToRawCreateRatio, 0.08), "≥ 8 %")},
		{"raw NATS making only a counter job's 15 writes / raw KV Create (paired): the ceiling of the line above", pctOf(r.E2EFloorRatio), ""},
		{"messages per end-to-end job sent / received by the job manager and the nodes", msgsPair(r.E2EMsgsSentPerJob, r.E2EMsgsReceivedPerJob),
			fmt.Sprintf("the floor's 15 writes: %d / %d", len(counterJobWrites), floorAcks())},
		{"raw JetStream KV Create, 3-node cluster, replicas 3 (/s)", f(r.R3RawKVCreatePerS, "%.0f"), "baseline"},
		{"submit, replicas 3 (jobs/s)", f(r.R3SubmitJobsPerS, "%.0f"), ""},
		{"submit / raw R3 KV Create (paired)", pctOf(r.R3SubmitToRawCreateRatio), target(ge(r.R3SubmitToRawCreateRatio, 0.25), "≥ 25 %")},
		{"end-to-end counter jobs, replicas 3 (jobs/s)", f(r.R3E2EJobsPerS, "%.0f"), ""},
		{"end-to-end / raw R3 KV Create", pctOf(r.R3E2EToRawCreateRatio), target(ge(r.R3E2EToRawCreateRatio, 0.08), "≥ 8 %")},
		{"scheduling p50, submit → first worker online (ms)", f(r.ScheduleP50Ms, "%.1f"), ""},
		{"scheduling p99 (ms)", f(r.ScheduleP99Ms, "%.1f"), target(lt(r.ScheduleP99Ms, 50), "< 50")},
		{"scheduling max (ms)", f(r.ScheduleMaxMs, "%.1f"), ""},
		{"placements/s (" + nodes + ")", f(r.PlacementsPerS, "%.0f"), target(ge(r.PlacementsPerS, 5000), "≥ 5,000")},
		{"placements/s on fresh node processes (each run on new ones)", f(r.PlacementsFirstPerS, "%.0f"), target(ge(r.PlacementsFirstPerS, 5000), "≥ 5,000")},
		{"placements on fresh node processes / raw request/reply", pctOf(r.PlacementsToRawReqRatio), target(ge(r.PlacementsToRawReqRatio, 0.08), "≥ 8 %")},
		{"job-master node CPU (" + hb + ", cores)", f(r.HBMasterCores, "%.3f"), target(lt(r.HBMasterCores, 0.5), "< 0.5")},
		{"worker nodes CPU (cores, all nodes)", f(r.HBWorkerCores, "%.3f"), ""},
		{"nats-server + job manager CPU (cores)", f(r.HBServerCores, "%.3f"), ""},
		{"NATS messages/s (in + out)", f(r.HBNatsMsgsPerS, "%.0f"), ""},
		{"worker node RSS per worker (bytes)", f(r.HBMemBytesPerWorker, "%.0f"), ""},
		{"failover p50 (ms), kill -9 of the master's node, heartbeat timeout", f(r.FailoverP50Ms, "%.0f"), ""},
		{"failover p99 (ms)", f(r.FailoverP99Ms, "%.0f"), target(lt(r.FailoverP99Ms, 3200), "< master timeout + 200 ms = 3,200")},
		{fmt.Sprintf("list, first page of 100 at %d jobs, p50 / p99 (ms)", r.ListJobs), pair(r.ListPageP50Ms, r.ListPageP99Ms), "O(page): limit 1 " + f(r.ListOneP50Ms, "%.2f") + " ms, a filter matching nothing " + f(r.ListNoneP50Ms, "%.2f") + " ms"},
		{"list, every page of 1000 (ms)", f(r.ListWalkMs, "%.0f"), ""},
		{"failover on a $SYS disconnect event, p50 / p99 (ms)", pair(r.FailoverDisconnectP50Ms, r.FailoverDisconnectP99Ms), "where the deployment grants system-account access"},
		{"mass failover, kill -9 of a node hosting " + f(r.MassFailoverJobs, "%.0f") + " masters, $SYS disconnect event, p50 / p99 / last ready (ms)",
			triple(r.MassFailoverSysP50Ms, r.MassFailoverSysP99Ms, r.MassFailoverSysLast), target(lt(r.MassFailoverSysLast, 1000), "every master ready < 1,000")},
		{"mass failover on the heartbeat timeout, p50 / p99 / last ready (ms)",
			triple(r.MassFailoverHBP50Ms, r.MassFailoverHBP99Ms, r.MassFailoverHBLast), target(lt(r.MassFailoverHBLast, 4000), "every master ready < master timeout + 1 s = 4,000")},
		{"leader failover, kill -9 of the leader → first job scheduled by the new one, $SYS disconnect event, p50 / p99 (ms)", pair(r.LeaderFailoverP50Ms, r.LeaderFailoverP99Ms), target(lt(r.LeaderFailoverP99Ms, 1000), "< 1,000")},
		{"largest counter job (target 1) finished with no worker re-created, make run topology (workers)", intOr(r.LargestJobNoRecreate), target(r.LargestJobNoRecreate != nil && *r.LargestJobNoRecreate >= 10000, "≥ 10,000; from bench/results/bigjob.json")},
		{"leader failover on the lease TTL (5 s), p50 / p99 (ms)", pair(r.LeaderFailoverTTLP50Ms, r.LeaderFailoverTTLP99Ms), "without system-account access"},
	}
	rows = append(rows, scaleRows(r)...)
	rows = append(rows, wordcountRows(r.Wordcount)...)
	if r.Wordcount != nil {
		rows = append(rows, row{"wordcount, 2 worker nodes / baseline", f(r.WordcountToBaselineRatio, "%.2f×"), target(ge(r.WordcountToBaselineRatio, 1), "≥ 1.0×")})
	}
	return rows
}

func intOr(v *int) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%d", *v)
}

func pair(a, b *float64) string {
	if a == nil || b == nil {
		return "—"
	}
	return fmt.Sprintf("%.0f / %.0f", *a, *b)
}

func triple(a, b, c *float64) string {
	if a == nil || b == nil || c == nil {
		return "—"
	}
	return fmt.Sprintf("%.0f / %.0f / %.0f", *a, *b, *c)
}

func msgsPair(sent, received *float64) string {
	if sent == nil || received == nil {
		return "—"
	}
	return fmt.Sprintf("%.1f / %.1f", *sent, *received)
}

// pctOf shows a ratio as a percentage with one decimal: a figure beside
// its target (7.8 % against ≥ 8 %) must not round onto it.
func pctOf(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%.1f %%", 100**v)
}

// env is the machine and software a run measured.
type env struct {
	Date       string `json:"date"`
	Command    string `json:"command"`
	Quick      bool   `json:"quick"`
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	MemTotal   string `json:"mem_total"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	NATSServer string `json:"nats_server"`
	NATSClient string `json:"nats_go"`
	LoadStart  string `json:"loadavg_start"`
	LoadEnd    string `json:"loadavg_end"`
	// PhaseLoad is the load average as each phase started.
	PhaseLoad map[string]string `json:"loadavg_by_phase,omitempty"`
	// StealPct is the share of the machine's CPU time the hypervisor gave
	// other machines over the run (/proc/stat), in per cent: on a shared
	// host it moves every rate by tens of per cent between hours.
	StealPct    *float64 `json:"steal_pct,omitempty"`
	DurationSec float64  `json:"duration_s"`
	start       time.Time
	steal0      [2]uint64 // stolen and total clock ticks at the start
	phases      []string  // in the order they ran
}

func collectEnv(o *options) *env {
	e := &env{
		Date:       time.Now().UTC().Format(time.RFC3339),
		Command:    command(),
		Quick:      o.quick,
		Cores:      runtime.NumCPU(),
		Go:         runtime.Version(),
		NATSServer: server.VERSION,
		NATSClient: nats.Version,
		start:      time.Now(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				e.MemTotal = strings.TrimSpace(v)
			}
		}
	}
	e.Kernel = readTrim("/proc/sys/kernel/osrelease")
	e.LoadStart = loadavg()
	_, total, steal := cpuLine(readTrim("/proc/stat"))
	e.steal0 = [2]uint64{steal, total}
	return e
}

func (e *env) finish() {
	e.LoadEnd = loadavg()
	if _, total, steal := cpuLine(readTrim("/proc/stat")); total > e.steal0[1] {
		e.StealPct = round1(100 * float64(steal-e.steal0[0]) / float64(total-e.steal0[1]))
	}
	e.DurationSec = math.Round(time.Since(e.start).Seconds())
}

func loadavg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// command is how the run was started, as a reader would type it.
func command() string {
	args := append([]string{"go run ./bench"}, os.Args[1:]...)
	return strings.Join(args, " ")
}

const (
	mdBegin = "<!-- bench:begin (generated by go run ./bench; edit outside these markers) -->"
	mdEnd   = "<!-- bench:end -->"
)

// writeMarkdown regenerates the table between the markers of path and
// keeps everything else, so the analysis written around it survives.
func writeMarkdown(path string, r *results, e *env) error {
	var t bytes.Buffer
	fmt.Fprintln(&t, mdBegin)
	fmt.Fprintf(&t, "Run of %s, `%s` (%.0f s).\n\n", e.Date, e.Command, e.DurationSec)
	fmt.Fprintf(&t, "Machine: %s, %d cores, %s RAM, Linux %s; %s; nats-server %s (embedded, JetStream file store, loopback), nats.go %s. ",
		e.CPU, e.Cores, e.MemTotal, e.Kernel, e.Go, e.NATSServer, e.NATSClient)
	fmt.Fprintf(&t, "Load average %s at the start, %s at the end", e.LoadStart, e.LoadEnd)
	var phases []string
	for _, p := range e.phases {
		if f := strings.Fields(e.PhaseLoad[p]); len(f) > 0 {
			phases = append(phases, p+" "+f[0])
		}
	}
	if len(phases) > 0 {
		fmt.Fprintf(&t, " (1-minute load as each phase started: %s)", strings.Join(phases, ", "))
	}
	if e.StealPct != nil {
		fmt.Fprintf(&t, "; the host's steal time %.1f %% over the run (CPU time the hypervisor gave other machines)", *e.StealPct)
	}
	fmt.Fprintf(&t, ": the machine is shared with other engineers' test runs, so every rate is a lower bound.\n\n")
	fmt.Fprintln(&t, "| measure | value | target |")
	fmt.Fprintln(&t, "|---|---:|---|")
	for _, row := range r.rows() {
		fmt.Fprintf(&t, "| %s | %s | %s |\n", row.what, row.value, row.target)
	}
	fmt.Fprintln(&t, mdEnd)

	old, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		old = []byte("# Benchmarks\n\n" + mdBegin + "\n" + mdEnd + "\n")
	} else if err != nil {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, mdBegin), strings.Index(s, mdEnd)
	if i < 0 || j < i {
		s = strings.TrimRight(s, "\n") + "\n\n" + t.String()
	} else {
		s = s[:i] + t.String() + strings.TrimPrefix(s[j+len(mdEnd):], "\n")
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

func round0(v float64) *float64 { v = math.Round(v); return &v }

// pairedWordcountRatio is a run's median paired ratio; results written
// before the runs were paired have none, and give the job's best MB/s over
// the best baseline.
func pairedWordcountRatio(run wordcountRun, baseline float64) *float64 {
	if len(run.Ratios) > 0 {
		return round3(run.VsBaseline)
	}
	if baseline <= 0 {
		return nil
	}
	return round3(run.MBps / baseline)
}

func round1(v float64) *float64 { v = math.Round(v*10) / 10; return &v }
func round2(v float64) *float64 { v = math.Round(v*100) / 100; return &v }
func round3(v float64) *float64 { v = math.Round(v*1000) / 1000; return &v }
