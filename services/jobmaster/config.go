// Package jobmaster is the job-master node service: it hosts many job masters,
// each a runtime.MasterRuntime, reports them to the job manager every
// heartbeat, and on SIGTERM hands them over to other nodes at once.
package jobmaster

import (
	"errors"
	"fmt"

	"github.com/drover-run/drover/internal/config"
)

// DefaultCapacity is the most masters a node runs when DROVER_CAPACITY is unset.
const DefaultCapacity = 1000

// Config of a job-master node (DROVER_ variables).
type Config struct {
	config.Node
	config.Pacing
}

// Validate checks the config.
func (c *Config) Validate() error {
	errs := []error{c.Node.Validate(), c.Pacing.Validate()}
	if c.WorkerTimeoutMax != 0 && c.WorkerTimeoutMax < c.WorkerTimeout {
		errs = append(errs, fmt.Errorf("%w: DROVER_WORKER_TIMEOUT_MAX (%s) must not be below DROVER_WORKER_TIMEOUT (%s)",
			config.ErrInvalid, c.WorkerTimeoutMax, c.WorkerTimeout))
	}
	return errors.Join(errs...)
}
