// Command worker runs one worker node hosting the built-in job types'
// workers. Configuration is DROVER_* environment variables.
package main

import (
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/svc"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/services/worker"
)

func main() {
	var cfg worker.Config
	svc.Main("worker", &cfg, func() *config.Common { return &cfg.Common }, ":8082",
		func(nc *nats.Conn, log *zap.Logger) (svc.Runner, error) {
			return worker.New(cfg, worker.Deps{NC: nc, Log: log, Types: builtin.For(cfg.TestJobTypes)})
		})
}
