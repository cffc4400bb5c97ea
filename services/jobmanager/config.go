// Package jobmanager is the job manager service: any replica serves the v1
// API (NATS and HTTP) and stores jobs; the replica holding the leader lease
// schedules masters onto job-master nodes, watches their heartbeats, moves
// them when their node dies or leaves, applies the restart policy and
// drives cancellation to an end.
package jobmanager

import (
	"errors"
	"fmt"
	"time"

	"github.com/drover-run/drover/internal/config"
)

// Config of a job manager replica (DROVER_ variables).
type Config struct {
	config.Common
	RestartBackoff    time.Duration `envconfig:"RESTART_BACKOFF" default:"1s"`
	RestartMaxBackoff time.Duration `envconfig:"RESTART_MAX_BACKOFF" default:"1m"`
	MaxRestarts       int           `envconfig:"MAX_RESTARTS" default:"10"`
	// PurgeFinished removes a finished job's worker and business records.
	PurgeFinished bool `envconfig:"PURGE_FINISHED" default:"false"`
}

// Validate checks the config.
func (c *Config) Validate() error {
	errs := []error{c.Common.Validate()}
	if c.RestartBackoff <= 0 || c.RestartMaxBackoff < c.RestartBackoff {
		errs = append(errs, fmt.Errorf("%w: DROVER_RESTART_BACKOFF must be positive and at most DROVER_RESTART_MAX_BACKOFF", config.ErrInvalid))
	}
	if c.MaxRestarts < 0 {
		errs = append(errs, fmt.Errorf("%w: DROVER_MAX_RESTARTS must not be negative", config.ErrInvalid))
	}
	return errors.Join(errs...)
}
