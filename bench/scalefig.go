package main

import (
	"fmt"
	"time"
)

// loadFigures are one fanout job's placement and steady state: the
// scale100k and active10k phases. A figure is null when the phase did not
// get that far (its workers were not all placed within loadWithin).
type loadFigures struct {
	Workers     int `json:"workers"`
	WorkerNodes int `json:"worker_nodes"`
	// Online counts the workers whose first incarnation came online.
	Online           int      `json:"online"`
	PlacementSeconds *float64 `json:"placement_seconds"`
	PlacementsPerS   *float64 `json:"placements_per_s"`
	WindowSeconds    *float64 `json:"window_seconds"`
	MasterCores      *float64 `json:"master_cores"`
	WorkerCores      *float64 `json:"worker_cores"`
	// ServerCores is the bench process: nats-server and the job manager.
	ServerCores  *float64 `json:"server_cores"`
	NatsMsgsPerS *float64 `json:"nats_msgs_per_s"`
	// StateWritesPerS are the writes the state stream (worker, master and
	// business records) took in the window.
	StateWritesPerS         *float64 `json:"state_writes_per_s"`
	MemBytesPerWorker       *float64 `json:"mem_bytes_per_worker"`
	MasterMemBytesPerWorker *float64 `json:"master_mem_bytes_per_worker"`
	// KeepUp is, for active workers, StateWritesPerS over the writes they
	// ask for (a status and a business KV write per worker per second).
	KeepUp *float64 `json:"keep_up,omitempty"`
	// MasterStatusesPerS is, for active workers, the status updates the
	// master's loop handled per second in the window (the count its job
	// detail reports); MasterKeepUp is it over the status updates written
	// (half the state writes). It exceeds 1 when the master drains, in the
	// window, a backlog queued before it (after the placement burst).
	MasterStatusesPerS *float64 `json:"master_statuses_per_s,omitempty"`
	MasterKeepUp       *float64 `json:"master_keep_up,omitempty"`
	// Offline and Recreated count worker_offline events and incarnations
	// beyond the first over the whole phase: both 0 when nothing collapsed.
	Offline   int `json:"offline"`
	Recreated int `json:"recreated"`
	// MasterEpoch is the job's highest master epoch: above 1, the job
	// manager found the master's node silent and failed the master over.
	MasterEpoch uint64 `json:"master_epoch"`
}

// window sets the figures of the window between two snapshots, in which
// the state stream took writes writes.
func (f *loadFigures) window(s0, s1 snapshot, writes uint64) {
	secs := s1.at.Sub(s0.at).Seconds()
	f.WindowSeconds = round2(secs)
	f.MasterCores = coresOver(s0.master.ticks, s1.master.ticks, secs)
	f.WorkerCores = coresOver(s0.workers, s1.workers, secs)
	f.ServerCores = coresOver(s0.self, s1.self, secs)
	f.NatsMsgsPerS = round0(float64(s1.msgs-s0.msgs) / secs)
	f.StateWritesPerS = round0(float64(writes) / secs)
}

// healthy reports whether every worker was placed and none was lost.
func (f *loadFigures) healthy() bool {
	return f.Online == f.Workers && f.Offline == 0 && f.Recreated == 0 && f.MasterEpoch <= 1
}

// liveFigures are the live10k phase's: Jobs idle jobs, the leading job
// manager a process of its own.
type liveFigures struct {
	Jobs int `json:"jobs"`
	// Live counts the jobs whose master is ready, not ended.
	Live int `json:"live"`
	// ScheduleSeconds: the first submit → every master ready.
	ScheduleSeconds *float64 `json:"schedule_seconds"`
	WindowSeconds   *float64 `json:"window_seconds"`
	LeaderCores     *float64 `json:"leader_cores"`
	LeaderRSS       *float64 `json:"leader_rss_bytes"`
	LeaderRSSNoJobs *float64 `json:"leader_rss_bytes_no_jobs"`
	// LeaderBytesPerJob and MasterBytesPerJob are RSS growth per job.
	LeaderBytesPerJob *float64 `json:"leader_bytes_per_job"`
	MasterCores       *float64 `json:"master_cores"`
	MasterBytesPerJob *float64 `json:"master_bytes_per_job"`
	// ServerCores is the bench process: nats-server alone.
	ServerCores *float64 `json:"server_cores"`
	// Ended counts jobs that ended during the phase: 0 when nothing
	// collapsed.
	Ended int `json:"ended"`
}

// window sets the figures of the window: the leader before any job (jm0),
// at the window's start (l0) and end (l1); the job-master node before any
// job (master0); the snapshots at the window's start and end.
func (f *liveFigures) window(jm0, l0, l1, master0 procStat, s0, s1 snapshot) {
	secs := s1.at.Sub(s0.at).Seconds()
	f.WindowSeconds = round2(secs)
	f.LeaderCores = coresOver(l0.ticks, l1.ticks, secs)
	rss := float64(l1.rss)
	f.LeaderRSS = &rss
	noJobs := float64(jm0.rss)
	f.LeaderRSSNoJobs = &noJobs
	f.LeaderBytesPerJob = perEach(jm0.rss, l1.rss, f.Jobs)
	f.MasterCores = coresOver(s0.master.ticks, s1.master.ticks, secs)
	f.MasterBytesPerJob = perEach(master0.rss, s1.master.rss, f.Jobs)
	f.ServerCores = coresOver(s0.self, s1.self, secs)
}

// deriveScale sets the scale phases' headline keys from their details:
// a run of some phases (-only) keeps the other keys of the last results,
// and must not leave an old headline beside a new phase's details (null
// when it collapsed).
func (r *results) deriveScale() {
	if h := r.Scale100k; h != nil {
		r.Placements100kPerS, r.HB100kMasterCores, r.HB100kMemBytesPerWorker = h.PlacementsPerS, h.MasterCores, h.MemBytesPerWorker
	}
	if a := r.Active10k; a != nil {
		r.Active10kMasterCores = a.MasterCores
	}
	if l := r.Live10k; l != nil {
		r.Live10kLeaderCores, r.Live10kLeaderRSS = l.LeaderCores, l.LeaderRSS
	}
}

// coresOver is the cores a process used over secs, from its clock ticks.
func coresOver(t0, t1 uint64, secs float64) *float64 {
	return round3(float64(t1-t0) / clockTicks / secs)
}

// perEach is the growth from before to after shared by n (bytes per worker
// or per job); negative when the garbage collector returned more.
func perEach(before, after uint64, n int) *float64 {
	return round0(float64(int64(after)-int64(before)) / float64(n))
}

// keepUp is the share of the writes asked for that were done: workers
// each writing their status and a business key every interval.
func keepUp(writesPerS *float64, workers int, interval time.Duration) *float64 {
	if writesPerS == nil || workers == 0 {
		return nil
	}
	return round3(*writesPerS / (2 * float64(workers) / interval.Seconds()))
}

// masterKeepUp is the share of the status updates written (half the
// state writes of active workers) that the master handled.
func masterKeepUp(statusesPerS, writesPerS *float64) *float64 {
	if statusesPerS == nil || writesPerS == nil || *writesPerS == 0 {
		return nil
	}
	return round3(*statusesPerS / (*writesPerS / 2))
}

// scaleRows are the table rows of the scale100k, active10k and live10k
// phases.
func scaleRows(r *results) []row {
	f := func(v *float64, format string) string {
		if v == nil {
			return "—"
		}
		return fmt.Sprintf(format, *v)
	}
	mark := func(ok bool, text string) string {
		if ok {
			return "✅ " + text
		}
		return "❌ " + text
	}
	// A phase that did not run shows its default size and no verdict.
	h, a, l := r.Scale100k, r.Active10k, r.Live10k
	if h == nil {
		h = &loadFigures{Workers: 100000, WorkerNodes: 8}
	}
	if a == nil {
		a = &loadFigures{Workers: 10000}
	}
	if l == nil {
		l = &liveFigures{Jobs: 10000}
	}
	// verdict marks text, for a phase that ran, and adds the others.
	verdict := func(ran bool, ok bool, text string, others string) string {
		if !ran {
			return others
		}
		if others == "" {
			return mark(ok, text)
		}
		return mark(ok, text) + "; " + others
	}
	mb := func(v *float64) string {
		if v == nil {
			return "—"
		}
		return fmt.Sprintf("%.0f MB", *v/1e6)
	}
	return []row{
		{fmt.Sprintf("placements/s (%d workers of one job on %d worker nodes, fresh node processes)", h.Workers, h.WorkerNodes), f(r.Placements100kPerS, "%.0f"),
			verdict(r.Scale100k != nil, h.healthy(), fmt.Sprintf("no worker lost: %d of %d online, %d offline, %d re-created, master epoch %d", h.Online, h.Workers, h.Offline, h.Recreated, h.MasterEpoch), "")},
		{fmt.Sprintf("job-master node CPU (%d workers, 1 s heartbeat, cores)", h.Workers), f(r.HB100kMasterCores, "%.3f"),
			"worker nodes " + f(h.WorkerCores, "%.3f") + ", nats-server + job manager " + f(h.ServerCores, "%.3f")},
		{fmt.Sprintf("worker node RSS per worker (%d workers, bytes)", h.Workers), f(r.HB100kMemBytesPerWorker, "%.0f"), ""},
		{fmt.Sprintf("job-master node CPU (%d active workers, each a status and a business KV write per second, cores)", a.Workers), f(r.Active10kMasterCores, "%.3f"),
			verdict(r.Active10k != nil, a.healthy() && a.MasterKeepUp != nil && *a.MasterKeepUp >= 0.95,
				fmt.Sprintf("the master keeps up: it handled %s of the status updates written (%s/s), %d offline, %d re-created, master epoch %d",
					pctOf(a.MasterKeepUp), f(a.MasterStatusesPerS, "%.0f"), a.Offline, a.Recreated, a.MasterEpoch),
				"the writes were "+pctOf(a.KeepUp)+" of those asked; worker nodes "+f(a.WorkerCores, "%.3f")+", nats-server + job manager "+f(a.ServerCores, "%.3f"))},
		{fmt.Sprintf("leading job manager CPU (%d live idle jobs, cores)", l.Jobs), f(r.Live10kLeaderCores, "%.3f"),
			verdict(r.Live10k != nil, l.Live == l.Jobs && l.Ended == 0, fmt.Sprintf("%d of %d live", l.Live, l.Jobs), "job-master node "+f(l.MasterCores, "%.3f"))},
		{fmt.Sprintf("leading job manager RSS (%d live jobs, bytes)", l.Jobs), f(r.Live10kLeaderRSS, "%.0f"),
			mb(l.LeaderRSSNoJobs) + " with no job, " + f(l.LeaderBytesPerJob, "%.0f") + " B per job"},
	}
}
