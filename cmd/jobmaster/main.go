// Command jobmaster runs one job-master node hosting the built-in job
// types' masters. Configuration is DROVER_* environment variables.
package main

import (
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/svc"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/services/jobmaster"
)

func main() {
	var cfg jobmaster.Config
	svc.Main("jobmaster", &cfg, func() *config.Common { return &cfg.Common }, ":8081",
		func(nc *nats.Conn, log *zap.Logger) (svc.Runner, error) {
			return jobmaster.New(cfg, jobmaster.Deps{NC: nc, Log: log, Types: builtin.For(cfg.TestJobTypes)})
		})
}
