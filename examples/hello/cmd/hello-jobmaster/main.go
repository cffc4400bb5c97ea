// Command hello-jobmaster is a job-master node that runs the hello job
// type's masters: the stock node service with the example's registry.
// Configuration is the stock DROVER_* variables.
package main

import (
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/examples/hello"
	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/svc"
	"github.com/drover-run/drover/services/jobmaster"
)

func main() {
	var cfg jobmaster.Config
	svc.Main("hello-jobmaster", &cfg, func() *config.Common { return &cfg.Common }, ":8091",
		func(nc *nats.Conn, log *zap.Logger) (svc.Runner, error) {
			return jobmaster.New(cfg, jobmaster.Deps{NC: nc, Log: log, Types: hello.Registry()})
		})
}
