// Package stock runs Drover's stock services — the job manager, the
// job-master node and the worker node with the built-in job types — by
// name: the service binaries' main and `drover service <name>` (what
// `drover dev` re-executes) are the same code.
package stock

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/svc"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/services/jobmanager"
	"github.com/drover-run/drover/services/jobmaster"
	"github.com/drover-run/drover/services/worker"
)

// service is what svc.Main and svc.Serve need to run one stock service.
type service struct {
	cfg         config.Validator
	common      func() *config.Common
	defaultHTTP string
	build       func(nc *nats.Conn, log *zap.Logger) (svc.Runner, error)
}

// lookup returns a fresh description of the named service.
func lookup(name string) (service, bool) {
	switch name {
	case "jobmanager":
		var cfg jobmanager.Config
		return service{&cfg, func() *config.Common { return &cfg.Common }, ":8080",
			func(nc *nats.Conn, log *zap.Logger) (svc.Runner, error) {
				return jobmanager.New(cfg, jobmanager.Deps{NC: nc, Log: log, Types: builtin.For(cfg.TestJobTypes)})
			}}, true
	case "jobmaster":
		var cfg jobmaster.Config
		return service{&cfg, func() *config.Common { return &cfg.Common }, ":8081",
			func(nc *nats.Conn, log *zap.Logger) (svc.Runner, error) {
				return jobmaster.New(cfg, jobmaster.Deps{NC: nc, Log: log, Types: builtin.For(cfg.TestJobTypes)})
			}}, true
	case "worker":
		var cfg worker.Config
		return service{&cfg, func() *config.Common { return &cfg.Common }, ":8082",
			func(nc *nats.Conn, log *zap.Logger) (svc.Runner, error) {
				return worker.New(cfg, worker.Deps{NC: nc, Log: log, Types: builtin.For(cfg.TestJobTypes)})
			}}, true
	}
	return service{}, false
}

// Names are the stock services, sorted.
func Names() []string { return []string{"jobmanager", "jobmaster", "worker"} }

// Main is the whole life of a stock service binary (see svc.Main).
func Main(name string) {
	s, ok := lookup(name)
	if !ok {
		panic("stock: no service " + name)
	}
	svc.Main(name, s.cfg, s.common, s.defaultHTTP, s.build)
}

// Serve runs the named service until ctx ends (see svc.Serve).
func Serve(ctx context.Context, name string) error {
	s, ok := lookup(name)
	if !ok {
		return fmt.Errorf("no service %q (want one of %v)", name, Names())
	}
	return svc.Serve(ctx, name, s.cfg, s.common, s.defaultHTTP, s.build)
}
