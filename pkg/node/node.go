// Package node runs Drover's stock job-master and worker nodes with a job
// author's own registry of job types: the entry point of a custom binary,
// usable from any module. Configuration is the same DROVER_* environment
// variables as the stock binaries (docs/deploy.md).
package node

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/svc"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/services/jobmaster"
	"github.com/drover-run/drover/services/worker"
)

// RunJobMasterNode runs a job-master node serving types' masters until ctx
// ends, then hands its masters over to other nodes and returns. It returns
// an error for an invalid configuration, an unreachable NATS or a failed
// node.
func RunJobMasterNode(ctx context.Context, types *framework.Registry) error {
	var cfg jobmaster.Config
	return svc.Serve(ctx, "jobmaster", &cfg, func() *config.Common { return &cfg.Common }, ":8081",
		func(nc *nats.Conn, log *zap.Logger) (svc.Runner, error) {
			return jobmaster.New(cfg, jobmaster.Deps{NC: nc, Log: log, Types: types})
		})
}

// RunWorkerNode runs a worker node serving types' workers until ctx ends,
// then hands its workers back to their masters and returns.
func RunWorkerNode(ctx context.Context, types *framework.Registry) error {
	var cfg worker.Config
	return svc.Serve(ctx, "worker", &cfg, func() *config.Common { return &cfg.Common }, ":8082",
		func(nc *nats.Conn, log *zap.Logger) (svc.Runner, error) {
			return worker.New(cfg, worker.Deps{NC: nc, Log: log, Types: types})
		})
}
