// Package jobmaster is the job-master node service: it hosts many job masters,
// each a runtime.MasterRuntime, reports them to the job manager every
// heartbeat, and on SIGTERM hands them over to other nodes at once.
package jobmaster

import "github.com/drover-run/drover/internal/config"

// DefaultCapacity is the most masters a node runs when DROVER_CAPACITY is unset.
const DefaultCapacity = 1000

// Config of a job-master node (DROVER_ variables).
type Config struct {
	config.Node
}
