package runtime

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-run/drover/pkg/framework"
)

// Metrics are the runtime's own series, shared by every master or worker
// of a node. Labels are bounded: no job or worker ids.
type Metrics struct {
	WorkerCreations    prometheus.Counter
	WorkerOnlines      prometheus.Counter
	WorkerOfflines     *prometheus.CounterVec
	HeartbeatsReceived prometheus.Counter
	HeartbeatsSent     prometheus.Counter
	HeartbeatsMissed   prometheus.Counter
	FencedWrites       *prometheus.CounterVec
	MasterRecoveries   prometheus.Counter
	MasterReadySeconds prometheus.Histogram
	// FirstWorkerOnlineSeconds is the master's half of the scheduling
	// latency: the leader measures submit → master running
	// (drover_jobmanager_schedule_seconds), the master its start → first
	// worker online, on first starts only.
	FirstWorkerOnlineSeconds prometheus.Histogram
	SelfFenced               prometheus.Counter
	// CallbackFailures counts job callbacks that panicked or overran the
	// callback bound, by role (master, worker) and kind (panic, hung).
	CallbackFailures *prometheus.CounterVec
	// Waiting and overload (pacing.go).
	WorkersWaiting     prometheus.Gauge
	PlacementRetries   prometheus.Counter
	PatienceWidenings  prometheus.Counter
	LogLinesSuppressed prometheus.Counter
}

// NewMetrics builds the runtime metrics and registers them on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		WorkerCreations: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "worker_creations_total", Help: "Workers created by masters."}),
		WorkerOnlines: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "worker_onlines_total", Help: "Worker incarnations that attached to a master (first heartbeat)."}),
		WorkerOfflines: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "worker_offlines_total", Help: "Workers reported offline to their master, by reason."}, []string{"reason"}),
		HeartbeatsReceived: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "heartbeats_received_total", Help: "Worker heartbeats received by masters."}),
		HeartbeatsSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "heartbeats_sent_total", Help: "Heartbeats sent by workers."}),
		HeartbeatsMissed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "heartbeats_missed_total", Help: "Workers declared lost after worker_timeout without a heartbeat."}),
		FencedWrites: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "fenced_writes_rejected_total", Help: "Writes refused because a newer epoch exists, by role."}, []string{"role"}),
		MasterRecoveries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "master_recoveries_total", Help: "Masters started with OnMasterRecovered."}),
		MasterReadySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "master_ready_seconds", Help: "Master start to ready (every live worker re-attached).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		FirstWorkerOnlineSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "first_worker_online_seconds", Help: "Master start (assignment accepted) to its first worker online, on a job's first start.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		SelfFenced: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "workers_self_fenced_total", Help: "Workers that stopped themselves after worker_self_fence without an ack."}),
		CallbackFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "callback_failures_total", Help: "Job callbacks that panicked or did not return within the callback timeout, by role and kind; each failed its incarnation."},
			[]string{"role", "kind"}),
		WorkersWaiting: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "workers_waiting", Help: "Workers waiting for placement (no capacity, or a re-creation backoff)."}),
		PlacementRetries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "placement_retries_total", Help: "Placement attempts of waiting workers that found no capacity."}),
		PatienceWidenings: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "worker_timeout_widenings_total", Help: "Times a master saw many workers late at once and widened its worker timeout."}),
		LogLinesSuppressed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "drover", Subsystem: "runtime",
			Name: "log_lines_suppressed_total", Help: "Per-worker log lines a master summarised instead of writing."}),
	}
	if reg != nil {
		// A job-master and a worker node in one process may share reg:
		// the second one counts into the first one's series.
		register(reg, &m.WorkerCreations)
		register(reg, &m.WorkerOnlines)
		register(reg, &m.WorkerOfflines)
		register(reg, &m.HeartbeatsReceived)
		register(reg, &m.HeartbeatsSent)
		register(reg, &m.HeartbeatsMissed)
		register(reg, &m.FencedWrites)
		register(reg, &m.MasterRecoveries)
		register(reg, &m.MasterReadySeconds)
		register(reg, &m.FirstWorkerOnlineSeconds)
		register(reg, &m.SelfFenced)
		register(reg, &m.CallbackFailures)
		register(reg, &m.WorkersWaiting)
		register(reg, &m.PlacementRetries)
		register(reg, &m.PatienceWidenings)
		register(reg, &m.LogLinesSuppressed)
	}
	return m
}

// register registers *c on reg, or points *c at the collector already
// registered with the same description.
func register[C prometheus.Collector](reg prometheus.Registerer, c *C) {
	if err := reg.Register(*c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				*c = existing
				return
			}
		}
		panic(err)
	}
}

// offlineReasons bounds the reason label of worker_offlines_total: a
// reason comes from a worker's message, so an unknown one is "other".
var offlineReasons = map[string]bool{
	framework.OfflineTimeout: true, framework.OfflineNodeLeaving: true, framework.OfflineDispatchFailed: true, offlineJobEnded: true,
	string(framework.ExitFinished): true, string(framework.ExitFailed): true, string(framework.ExitCanceled): true,
}

// offlineJobEnded is the reason of the workers a master stops as it exits
// (events and metrics only: the job is not called any more).
const offlineJobEnded = "job_ended"

func offlineLabel(reason string) string {
	if offlineReasons[reason] {
		return reason
	}
	return "other"
}

// trackingRegisterer remembers what a job registered so the runtime can
// unregister it when the master ends: a job's series leave with it.
type trackingRegisterer struct {
	inner prometheus.Registerer
	mu    sync.Mutex
	cs    []prometheus.Collector
}

func newTrackingRegisterer(inner prometheus.Registerer) *trackingRegisterer {
	return &trackingRegisterer{inner: inner}
}

func (t *trackingRegisterer) Register(c prometheus.Collector) error {
	if err := t.inner.Register(c); err != nil {
		return err
	}
	t.mu.Lock()
	t.cs = append(t.cs, c)
	t.mu.Unlock()
	return nil
}

func (t *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

func (t *trackingRegisterer) Unregister(c prometheus.Collector) bool { return t.inner.Unregister(c) }

func (t *trackingRegisterer) unregisterAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.cs {
		t.inner.Unregister(c)
	}
	t.cs = nil
}
