// Package worker is the worker node service: it hosts many workers, each a
// runtime.WorkerRuntime, announces its capacity and labels, and on
// SIGTERM hands its workers back to their masters at once.
package worker

import "github.com/drover-run/drover/internal/config"

// DefaultCapacity is the most workers a node runs when DROVER_CAPACITY is unset.
const DefaultCapacity = 10000

// Config of a worker node (DROVER_ variables).
type Config struct {
	config.Node
	// WorkerLogRate is how many per-worker log lines (a worker exited,
	// stopped, following a new master) the node writes a second; beyond
	// it they are summarised. Errors always show.
	WorkerLogRate int `envconfig:"WORKER_LOG_RATE" default:"20"`
}
