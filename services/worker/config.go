// Package worker is the worker node service: it hosts many workers, each a
// framework.WorkerRuntime, announces its capacity and labels, and on
// SIGTERM hands its workers back to their masters at once.
package worker

import (
	"errors"
	"fmt"

	"github.com/drover-run/drover/internal/config"
)

// Config of a worker node (DROVER_ variables).
type Config struct {
	config.Common
	// Capacity is the most workers this node runs at once.
	Capacity int    `envconfig:"CAPACITY" default:"10000"`
	Labels   string `envconfig:"LABELS"`
}

// Validate checks the config.
func (c *Config) Validate() error {
	errs := []error{c.Common.Validate()}
	if c.Capacity < 1 {
		errs = append(errs, fmt.Errorf("%w: DROVER_CAPACITY must be at least 1, got %d", config.ErrInvalid, c.Capacity))
	}
	if _, err := config.ParseLabels(c.Labels); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
