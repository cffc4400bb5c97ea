// Package natstest runs a real embedded nats-server with JetStream for tests.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RunServer starts a JetStream server on a random loopback port, stopped at cleanup.
func RunServer(t testing.TB) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a client connection to s, closed at cleanup.
func Connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connect(t, s)
}

// ConnectRecordingErrors is Connect with the connection's asynchronous
// errors (a slow consumer, a permission refused) kept for the test, the
// first 16 of them, instead of printed by nats.go.
func ConnectRecordingErrors(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream, <-chan error) {
	t.Helper()
	errs := make(chan error, 16)
	nc, js := connect(t, s, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	return nc, js, errs
}

func connect(t testing.TB, s *server.Server, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Goroutines returns the stacks of every goroutine of the process, whole
// (the buffer grows until the dump fits), goroutines separated by a blank
// line: for tests that count the goroutines of one kind.
func Goroutines() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// RunCluster starts n JetStream servers clustered on loopback and waits
// until every server routes to every other and JetStream has a meta
// leader; the servers stop at cleanup. The cluster ports are picked free
// and then bound by the servers, so another test process may take one in
// between: a cluster that does not form in time is torn down and started
// again on other ports, up to three times.
func RunCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		servers, err := startCluster(t, n)
		if err == nil {
			t.Cleanup(func() { stopAll(servers) })
			return servers
		}
		stopAll(servers)
		if attempt == 3 {
			t.Fatalf("nats cluster of %d: %v", n, err)
		}
		t.Logf("nats cluster of %d, attempt %d: %v; again on other ports", n, attempt, err)
	}
}

func startCluster(t testing.TB, n int) ([]*server.Server, error) {
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	var routes []*url.URL
	for _, p := range ports {
		u, _ := url.Parse(fmt.Sprintf("nats://127.0.0.1:%d", p))
		routes = append(routes, u)
	}
	var servers []*server.Server
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("s%d", i),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     routes,
		}
		s, err := server.NewServer(opts)
		if err != nil {
			return servers, fmt.Errorf("server %d: %w", i, err)
		}
		go s.Start()
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			return servers, fmt.Errorf("server %s not ready", s.Name())
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		routed, leader := true, false
		for _, s := range servers {
			routed = routed && s.NumRoutes() >= n-1
			leader = leader || s.JetStreamIsLeader()
		}
		if routed && leader {
			return servers, nil
		}
		if time.Now().After(deadline) {
			return servers, fmt.Errorf("not formed after 20s (every server routed: %v, JetStream meta leader: %v)", routed, leader)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stopAll(servers []*server.Server) {
	for _, s := range servers {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
