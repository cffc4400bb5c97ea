package svc

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-run/drover/pkg/kvstate"
)

// KVObserver returns a kvstate.Observer recording every store operation in
// drover_kv_operation_seconds{op} and its failures (timeouts, lost
// connection, server errors; not missing keys or fenced writes) in
// drover_kv_operation_failures_total{op}. op is one of kvstate's fixed
// operation names, so the label set is bounded. Several services in one
// process may share reg: the second one reuses the first one's series.
func KVObserver(reg prometheus.Registerer) kvstate.Observer {
	if reg == nil {
		return nil
	}
	seconds := Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "drover", Subsystem: "kv", Name: "operation_seconds",
		Help:    "Latency of JetStream KV operations by operation (get_job, advance_epoch, put_master, business_put, ...).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"op"}))
	failures := Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "drover", Subsystem: "kv", Name: "operation_failures_total",
		Help: "KV operations that failed (timeout, connection, server error), by operation; missing keys and fenced writes are not failures.",
	}, []string{"op"}))
	return func(op string, took time.Duration, err error) {
		seconds.WithLabelValues(op).Observe(took.Seconds())
		if kvstate.IsFailure(err) {
			failures.WithLabelValues(op).Inc()
		}
	}
}

// Register registers c on reg, or returns the collector already registered
// under the same description, so services sharing a registry share a series.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
