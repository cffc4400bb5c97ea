package jobmanager

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	submissions       *prometheus.CounterVec
	rejected          *prometheus.CounterVec
	requests          *prometheus.CounterVec
	respondFailures   *prometheus.CounterVec
	deleted           *prometheus.CounterVec
	jobs              *prometheus.GaugeVec
	assignments       *prometheus.CounterVec
	failovers         *prometheus.CounterVec
	restarts          prometheus.Counter
	forcedCancels     prometheus.Counter
	crashLoops        prometheus.Counter
	ignoredHeartbeats prometheus.Counter
	leaderChanges     prometheus.Counter
	leader            prometheus.Gauge
	scheduleSecs      prometheus.Histogram
	assignBatch       prometheus.Histogram
	uiStreams         prometheus.Gauge
	uiRefused         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "drover", "jobmanager"
	m := &metrics{
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "submissions_total", Help: "Submissions accepted (new or idempotent repeats), by path: request (NATS or HTTP request/reply), durable (the requests stream)."},
			[]string{"path"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rejections_total", Help: "Submissions refused, by path (request, durable) and error code; nothing was stored."}, []string{"path", "code"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "api_requests_total", Help: "API requests (NATS and HTTP) by operation (jobs.submit, jobs.get, jobs.list, jobs.cancel, jobs.delete, jobs.workers, jobs.events, nodes.list) and result code (ok or the error code)."}, []string{"op", "code"}),
		respondFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "api_respond_failures_total", Help: "API replies not sent as built, by operation and reason: too_large (answered too_large instead), send (not sent)."}, []string{"op", "reason"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "jobs_deleted_total", Help: "Ended jobs removed with everything they left, by reason: delete (the admin API), retention (DROVER_RETENTION)."}, []string{"reason"}),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "jobs", Help: "Jobs by state, as the leader sees them."}, []string{"state"}),
		assignments: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "master_assignments_total", Help: "Masters assigned to job-master nodes (each with a new epoch), by reason (first, restart, timeout, handover)."},
			[]string{"reason"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "master_failovers_total", Help: "Masters moved off a node, by reason."}, []string{"reason"}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "master_restarts_total", Help: "Failed masters the restart policy gave another attempt (job back to pending)."}),
		forcedCancels: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "forced_cancels_total", Help: "Cancels finished by force after cancel_timeout or with no live master."}),
		crashLoops: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "crash_loops_total", Help: "Jobs failed with crash_loop: their masters' nodes kept dying under them."}),
		ignoredHeartbeats: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "ignored_heartbeats_total", Help: "Masters named by node heartbeats that the master records do not place on that node at that epoch (forged or confused); they keep nothing alive."}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "leader_changes_total", Help: "Times this replica became leader."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "is_leader", Help: "1 while this replica holds the leader lease."}),
		scheduleSecs: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "schedule_seconds", Help: "Job submit to its first master running (assignment accepted by a node, job record running).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}),
		assignBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "assignments_per_request", Help: "Assignments carried by one assign request to a job-master node (those made while the node's previous request was unanswered go together).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9)}),
		uiStreams: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "ui_streams", Help: "The console's live streams (Server-Sent Events) open on this replica."}),
		uiRefused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "ui_streams_refused_total", Help: "Live streams refused because DROVER_UI_MAX_STREAMS were open."}),
	}
	reg.MustRegister(m.submissions, m.rejected, m.requests, m.respondFailures, m.deleted, m.jobs, m.assignments, m.failovers,
		m.restarts, m.forcedCancels, m.crashLoops, m.ignoredHeartbeats, m.leaderChanges, m.leader, m.scheduleSecs,
		m.assignBatch)
	reg.MustRegister(m.uiStreams, m.uiRefused)
	return m
}

// shortSubject turns drover.api.v1.jobs.submit into jobs.submit (and
// drover.api.v1.nodes.list into nodes.list: the last token alone is not
// unique).
func shortSubject(s string) string {
	if _, rest, ok := strings.Cut(s, ".api.v1."); ok {
		return rest
	}
	return s
}
