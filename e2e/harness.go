// Package e2e runs Drover as real processes and breaks them: an embedded
// nats-server that outlives every process, job managers, job-master nodes
// and worker nodes started from the real binaries, and helpers to kill -9,
// SIGTERM, SIGSTOP and SIGCONT them, submit jobs, wait with deadlines, read
// /metrics and logs, and check the KV history for two live incarnations.
//
// The tests of this package are the failover and fencing tests that
// docs/failover.md lists ("The tests that prove it"); the same harness
// drives the failover benchmark.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/client"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// Kind is which binary a process runs.
type Kind string

// The three service binaries.
const (
	JobManager Kind = "jobmanager"
	JobMaster  Kind = "jobmaster"
	Worker     Kind = "worker"
)

// binDir holds the binaries built by Build.
var binDir string

// Build compiles the service binaries into dir once per test binary run
// (call it from TestMain). DROVER_E2E_RACE=1 builds them with -race.
func Build(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	if os.Getenv("DROVER_E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/jobmanager", "./cmd/jobmaster", "./cmd/worker")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, b)
	}
	binDir = dir
	return nil
}

// Bin returns the path of a built binary.
func Bin(k Kind) string { return filepath.Join(binDir, string(k)) }

// Timing is a DROVER_* timing schedule as environment values.
type Timing struct {
	Heartbeat, MasterTimeout, WorkerSelfFence, WorkerTimeout, LeaseTTL, CancelTimeout, AssignTimeout time.Duration
}

// FastTiming is short enough for tests and satisfies Timing.Validate with
// some room for a loaded 2-core machine: a master failover (1 s timeout +
// assignment) ends well before a worker fences itself (3 s).
func FastTiming() Timing {
	return Timing{
		Heartbeat:       200 * time.Millisecond,
		MasterTimeout:   time.Second,
		WorkerSelfFence: 3 * time.Second,
		WorkerTimeout:   4 * time.Second,
		LeaseTTL:        time.Second,
		CancelTimeout:   2 * time.Second,
		AssignTimeout:   time.Second,
	}
}

// DefaultTiming is the default schedule (docs/failover.md, Timings).
func DefaultTiming() Timing {
	return Timing{
		Heartbeat:       time.Second,
		MasterTimeout:   3 * time.Second,
		WorkerSelfFence: 8 * time.Second,
		WorkerTimeout:   10 * time.Second,
		LeaseTTL:        5 * time.Second,
		CancelTimeout:   10 * time.Second,
		AssignTimeout:   2 * time.Second,
	}
}

func (t Timing) env() map[string]string {
	return map[string]string{
		"DROVER_HEARTBEAT":         t.Heartbeat.String(),
		"DROVER_MASTER_TIMEOUT":    t.MasterTimeout.String(),
		"DROVER_WORKER_SELF_FENCE": t.WorkerSelfFence.String(),
		"DROVER_WORKER_TIMEOUT":    t.WorkerTimeout.String(),
		"DROVER_LEASE_TTL":         t.LeaseTTL.String(),
		"DROVER_CANCEL_TIMEOUT":    t.CancelTimeout.String(),
		"DROVER_ASSIGN_TIMEOUT":    t.AssignTimeout.String(),
	}
}

// Options shape a Cluster.
type Options struct {
	// Timing of every process; zero means FastTiming.
	Timing Timing
	// Env is added to every process (e.g. DROVER_MAX_RESTARTS).
	Env map[string]string
	// System configures the server with accounts: the application account
	// DROVER (user drover) and the system account SYS (user sys), and
	// gives job managers the system user (DROVER_NATS_SYSTEM_USER), so the
	// leader fails masters over on $SYS disconnect events.
	System bool
}

// Cluster is one deployment under test: the embedded server, a client,
// and the processes started on it.
type Cluster struct {
	t      testing.TB
	Dir    string
	Server *server.Server
	URL    string
	Timing Timing
	NC     *nats.Conn
	Client *client.Client
	Store  *kvstate.Store
	Space  topics.Space
	opts   Options

	mu    sync.Mutex
	procs []*Proc
	seq   map[string]int
	t0    time.Time
}

// started is when the cluster was created.
func (c *Cluster) started() time.Time { return c.t0 }

const (
	appUser, appPass = "drover", "drover-pass"
	sysUser, sysPass = "sys", "sys-pass"
)

// NewCluster starts the embedded server; add processes with Start.
// Everything stops at test cleanup, and on failure the tail of every log is
// printed.
func NewCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if binDir == "" {
		t.Fatal("e2e: binaries not built (call e2e.Build from TestMain)")
	}
	if opts.Timing == (Timing{}) {
		opts.Timing = FastTiming()
	}
	dir := t.TempDir()
	c := &Cluster{t: t, Dir: dir, Timing: opts.Timing, opts: opts, seq: map[string]int{}, t0: time.Now(),
		Space: topics.MustNew(topics.DefaultPrefix)}
	c.Server = runServer(t, dir, opts.System)
	c.URL = c.Server.ClientURL()
	t.Cleanup(c.cleanup)

	nopts := []nats.Option{nats.Name("e2e-test"), nats.MaxReconnects(-1)}
	if opts.System {
		nopts = append(nopts, nats.UserInfo(appUser, appPass))
	}
	nc, err := nats.Connect(c.URL, nopts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	c.NC = nc
	c.Client = client.New(nc, c.Space)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The same bucket options the services use, so nobody reconfigures them.
	c.Store, err = kvstate.Open(context.Background(), js, c.Space, kvstate.Options{
		Replicas: 1, NodeTTL: 3 * c.Timing.Heartbeat, LeaseTTL: c.Timing.LeaseTTL})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return c
}

func runServer(t testing.TB, dir string, system bool) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(dir, "jetstream"),
		NoLog: true, NoSigs: true,
	}
	if system {
		conf := filepath.Join(dir, "nats.conf")
		// The application account has JetStream; SYS sees its events.
		body := fmt.Sprintf(`
listen: "127.0.0.1:-1"
jetstream { store_dir: %q }
accounts {
  DROVER { jetstream: enabled, users: [ { user: %q, password: %q } ] }
  SYS { users: [ { user: %q, password: %q } ] }
}
system_account: SYS
`, filepath.Join(dir, "jetstream"), appUser, appPass, sysUser, sysPass)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var err error
		opts, err = server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("nats config: %v", err)
		}
		opts.NoLog, opts.NoSigs = true, true
		opts.Port = -1
	}
	// A frozen or cut-off client is dropped after about a second of
	// unanswered pings, as a partition would: what was sent to it meanwhile
	// is lost, and on its return it reconnects and finds itself fenced.
	opts.PingInterval, opts.MaxPingsOut = 500*time.Millisecond, 2
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return s
}

func (c *Cluster) cleanup() {
	c.mu.Lock()
	procs := append([]*Proc(nil), c.procs...)
	c.mu.Unlock()
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if keep := os.Getenv("DROVER_E2E_LOGS"); keep != "" {
		// Keep every log for a post-mortem: DROVER_E2E_LOGS=<dir>.
		dst := filepath.Join(keep, strings.ReplaceAll(c.t.Name(), "/", "_"))
		_ = os.MkdirAll(dst, 0o755)
		for _, p := range procs {
			if b, err := os.ReadFile(p.LogPath); err == nil {
				_ = os.WriteFile(filepath.Join(dst, filepath.Base(p.LogPath)), b, 0o644)
			}
		}
	}
	if c.t.Failed() {
		for _, p := range procs {
			c.t.Logf("---- last lines of %s (%s) ----\n%s", p.Name, p.LogPath, p.Tail(40))
		}
	}
	if c.NC != nil {
		c.NC.Close()
	}
	c.Server.Shutdown()
	c.Server.WaitForShutdown()
}

// Procs returns every process started, in start order.
func (c *Cluster) Procs() []*Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Proc(nil), c.procs...)
}

// Eventually polls cond every 20 ms until it holds or within passes.
func (c *Cluster) Eventually(within time.Duration, what string, cond func() bool) {
	c.t.Helper()
	if !Poll(within, cond) {
		c.t.Fatalf("timed out after %s waiting for %s", within, what)
	}
}

// Poll polls cond every 20 ms until it holds (true) or within passes.
func Poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
