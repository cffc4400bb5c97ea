// Package drovertest tests job types in process, from any module: an
// embedded NATS server with JetStream and the stock job manager, job-master
// and worker services, each on its own connection as if it were its own
// process, with timings short enough for failover in test time.
//
//	sys := drovertest.Start(t, myjobs.Registry())
//	sys.AddJobManager("mgr")
//	sys.AddJobMaster("jm")
//	sys.AddWorker("wk")
//	sys.WaitReady(1, 1)
//	sys.Client.Submit(ctx, api.Spec{...})
//	j, err := sys.WaitJob(id, 20*time.Second)
package drovertest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/pkg/framework"
)

// System is a running in-process deployment: add services with its
// AddJobManager, AddJobMaster and AddWorker methods, crash or stop them
// with Crash and Stop, submit with Client.
type System = testsys.System

// Start runs an embedded server serving types; it is stopped, with every
// service added, when the test ends.
func Start(t testing.TB, types *framework.Registry) *System { return testsys.Start(t, types) }

// RunServer starts an embedded NATS server with JetStream on a random
// loopback port, for tests that run their nodes as processes.
func RunServer(t testing.TB) *server.Server { return natstest.RunServer(t) }

// Connect connects to s for the rest of the test.
func Connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	return natstest.Connect(t, s)
}

// Eventually polls cond until it holds, failing the test after within.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	natstest.Eventually(t, within, what, cond)
}
