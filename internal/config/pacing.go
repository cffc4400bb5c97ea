package config

import (
	"errors"
	"fmt"
	"time"
)

// Pacing is how a job-master node's masters place workers that must wait
// and read many late workers at once (docs/operations.md, Waiting and
// overload).
type Pacing struct {
	PlacementBackoff    time.Duration `envconfig:"PLACEMENT_BACKOFF" default:"250ms"`
	PlacementBackoffMax time.Duration `envconfig:"PLACEMENT_BACKOFF_MAX" default:"15s"`
	MaxRecreations      int           `envconfig:"MAX_RECREATIONS" default:"64"`
	WorkerLateBurst     int           `envconfig:"WORKER_LATE_BURST" default:"100"`
	// WorkerTimeoutMax caps the widened worker timeout (0: two worker timeouts).
	WorkerTimeoutMax time.Duration `envconfig:"WORKER_TIMEOUT_MAX"`
	WorkerLogRate    int           `envconfig:"WORKER_LOG_RATE" default:"20"`
}

// Validate checks the pacing settings.
func (p *Pacing) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if p.PlacementBackoff <= 0 {
		bad("DROVER_PLACEMENT_BACKOFF must be positive, got %s", p.PlacementBackoff)
	}
	if p.PlacementBackoffMax < p.PlacementBackoff {
		bad("DROVER_PLACEMENT_BACKOFF_MAX (%s) must not be below DROVER_PLACEMENT_BACKOFF (%s)", p.PlacementBackoffMax, p.PlacementBackoff)
	}
	if p.MaxRecreations < 1 {
		bad("DROVER_MAX_RECREATIONS must be at least 1, got %d", p.MaxRecreations)
	}
	if p.WorkerLateBurst < 1 {
		bad("DROVER_WORKER_LATE_BURST must be at least 1, got %d", p.WorkerLateBurst)
	}
	if p.WorkerTimeoutMax < 0 {
		bad("DROVER_WORKER_TIMEOUT_MAX must not be negative, got %s", p.WorkerTimeoutMax)
	}
	if p.WorkerLogRate < 1 {
		bad("DROVER_WORKER_LOG_RATE must be at least 1, got %d", p.WorkerLogRate)
	}
	return errors.Join(errs...)
}
