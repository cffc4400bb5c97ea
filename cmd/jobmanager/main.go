// Command jobmanager runs one job manager replica (API, job store, and the
// leader-elected scheduler). Configuration is DROVER_* environment variables.
package main

import (
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/svc"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/services/jobmanager"
)

func main() {
	var cfg jobmanager.Config
	svc.Main("jobmanager", &cfg, func() *config.Common { return &cfg.Common }, ":8080",
		func(nc *nats.Conn, log *zap.Logger) (svc.Runner, error) {
			return jobmanager.New(cfg, jobmanager.Deps{NC: nc, Log: log, Types: builtin.For(cfg.TestJobTypes)})
		})
}
