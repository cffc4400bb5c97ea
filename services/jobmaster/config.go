// Package jobmaster is the job-master node service: it hosts many job masters,
// each a framework.MasterRuntime, reports them to the job manager every
// heartbeat, and on SIGTERM hands them over to other nodes at once.
package jobmaster

import (
	"errors"
	"fmt"

	"github.com/drover-run/drover/internal/config"
)

// Config of a job-master node (DROVER_ variables).
type Config struct {
	config.Common
	// Capacity is the most masters this node runs at once.
	Capacity int    `envconfig:"CAPACITY" default:"1000"`
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
