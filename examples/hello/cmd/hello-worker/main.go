// Command hello-worker is a worker node that runs the hello job type's
// greeters: the stock node service with the example's registry.
// Configuration is the stock DROVER_* variables.
package main

import (
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/examples/hello"
	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/svc"
	"github.com/drover-run/drover/services/worker"
)

func main() {
	var cfg worker.Config
	svc.Main("hello-worker", &cfg, func() *config.Common { return &cfg.Common }, ":8092",
		func(nc *nats.Conn, log *zap.Logger) (svc.Runner, error) {
			return worker.New(cfg, worker.Deps{NC: nc, Log: log, Types: hello.Registry()})
		})
}
