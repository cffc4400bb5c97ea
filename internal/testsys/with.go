package testsys

import (
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/services/jobmaster"
	"github.com/drover-run/drover/services/worker"
)

// AddJobMasterWith starts a job-master node with the system's settings as
// changed by edit.
func (s *System) AddJobMasterWith(id string, edit func(*jobmaster.Config)) *Proc {
	cfg := jobmaster.Config{Node: config.Node{Common: s.common(id, ""), CallbackTimeout: s.CallbackTimeout}}
	edit(&cfg)
	return s.start(id, func(nc *nats.Conn, log *zap.Logger, reg *prometheus.Registry) (runner, error) {
		return jobmaster.New(cfg, jobmaster.Deps{NC: nc, Log: log, Registry: reg, Types: s.Types})
	})
}

// AddWorkerWith starts a worker node with the system's settings as
// changed by edit.
func (s *System) AddWorkerWith(id string, edit func(*worker.Config)) *Proc {
	cfg := worker.Config{Node: config.Node{Common: s.common(id, ""), CallbackTimeout: s.CallbackTimeout}}
	edit(&cfg)
	return s.start(id, func(nc *nats.Conn, log *zap.Logger, reg *prometheus.Registry) (runner, error) {
		return worker.New(cfg, worker.Deps{NC: nc, Log: log, Registry: reg, Types: s.Types})
	})
}
