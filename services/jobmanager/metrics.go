package jobmanager

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	submissions   prometheus.Counter
	rejected      *prometheus.CounterVec
	requests      *prometheus.CounterVec
	jobs          *prometheus.GaugeVec
	assignments   prometheus.Counter
	failovers     *prometheus.CounterVec
	restarts      prometheus.Counter
	forcedCancels prometheus.Counter
	leaderChanges prometheus.Counter
	leader        prometheus.Gauge
	scheduleSecs  prometheus.Histogram
	kvSeconds     *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "drover", "jobmanager"
	m := &metrics{
		submissions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "submissions_total", Help: "Jobs accepted through the API."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rejections_total", Help: "Submissions refused, by path (request, durable) and error code."}, []string{"path", "code"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "api_requests_total", Help: "API requests by operation and result code."}, []string{"op", "code"}),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "jobs", Help: "Jobs by state, as the leader sees them."}, []string{"state"}),
		assignments: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "master_assignments_total", Help: "Masters assigned to job-master nodes (each with a new epoch)."}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "master_failovers_total", Help: "Masters moved off a node, by reason."}, []string{"reason"}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "master_restarts_total", Help: "Failed masters restarted by the restart policy."}),
		forcedCancels: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "forced_cancels_total", Help: "Cancels finished by force after cancel_timeout or with no live master."}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "leader_changes_total", Help: "Times this replica became leader."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "is_leader", Help: "1 while this replica holds the leader lease."}),
		scheduleSecs: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "schedule_seconds", Help: "Job submit to master running.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}),
		kvSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "kv_operation_seconds", Help: "Latency of the leader's KV operations, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"op"}),
	}
	reg.MustRegister(m.submissions, m.rejected, m.requests, m.jobs, m.assignments, m.failovers,
		m.restarts, m.forcedCancels, m.leaderChanges, m.leader, m.scheduleSecs, m.kvSeconds)
	return m
}

// shortSubject turns drover.api.v1.jobs.submit into submit.
func shortSubject(s string) string {
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		return s[i+1:]
	}
	return s
}
