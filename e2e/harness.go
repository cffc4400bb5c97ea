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

	"github.com/drover-run/drover/internal/auth"
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

// Settle is how long a test watches for something that must NOT happen
// (a canceled job assigned, a restart after the last one): the longest a
// job manager or a master waits before its next step — an assignment
// timeout after a master timeout, plus a heartbeat — so a step that was
// going to happen has had its chance whatever the machine's speed.
func (t Timing) Settle() time.Duration {
	return t.MasterTimeout + t.AssignTimeout + t.Heartbeat
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
	// System gives job managers their system-account identity, so the
	// leader fails masters over on $SYS disconnect events. The server
	// always runs the production authorization (internal/auth): every
	// process connects with its role's identity.
	System bool
	// AllowViolations: the test provokes permission violations on purpose;
	// otherwise any violation fails the test (an honest process was refused).
	AllowViolations bool
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
	// Auth is the deployment's identities and server authorization.
	Auth *auth.Deployment
	opts Options
	// violations are the server's permission-violation log lines.
	violations *violationLog

	mu    sync.Mutex
	procs []*Proc
	seq   map[string]int
	t0    time.Time
}

// started is when the cluster was created.
func (c *Cluster) started() time.Time { return c.t0 }

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
	if keep := os.Getenv("DROVER_E2E_KEEP"); keep != "" {
		// Kept after the test (logs, store) for a post-mortem: a fresh
		// directory under keep, named after the test.
		if d, err := os.MkdirTemp(keep, strings.NewReplacer("/", "_").Replace(t.Name())+"-"); err == nil {
			t.Logf("e2e: cluster files kept in %s", d)
			dir = d
		}
	}
	c := &Cluster{t: t, Dir: dir, Timing: opts.Timing, opts: opts, seq: map[string]int{}, t0: time.Now(),
		Space: topics.MustNew(topics.DefaultPrefix)}
	var err error
	c.Auth, err = auth.Init(filepath.Join(dir, "auth"), auth.Options{Space: c.Space, Anonymous: true,
		Perm: topics.PermOptions{DataBuckets: auth.DefaultDataBuckets, WorkBucket: auth.DefaultWorkBucket}})
	if err != nil {
		t.Fatal(err)
	}
	c.violations = &violationLog{}
	c.Server = runServer(t, dir, c.Auth, c.violations)
	c.URL = c.Server.ClientURL()
	t.Cleanup(c.cleanup)

	// The test itself is the operator: it reads and forges state.
	nc, err := c.Connect(topics.RoleAdmin, "e2e-test")
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

// Connect opens a connection with role's identity (topics.RoleClient
// without credentials is the anonymous client).
func (c *Cluster) Connect(role topics.Role, name string, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.CustomInboxPrefix(c.Space.InboxPrefix(role))}
	o, err := nats.NkeyOptionFromSeed(c.Auth.SeedFile(role))
	if err != nil {
		return nil, err
	}
	return nats.Connect(c.URL, append(append(opts, o), extra...)...)
}

func runServer(t testing.TB, dir string, d *auth.Deployment, vl *violationLog) *server.Server {
	t.Helper()
	opts, err := d.ServerOptions("127.0.0.1", -1, filepath.Join(dir, "jetstream"))
	if err != nil {
		t.Fatalf("nats config: %v", err)
	}
	// A frozen or cut-off client is dropped after about a second of
	// unanswered pings, as a partition would: what was sent to it meanwhile
	// is lost, and on its return it reconnects and finds itself fenced.
	opts.PingInterval, opts.MaxPingsOut = 500*time.Millisecond, 2
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.SetLogger(vl, false, false)
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
	if v := c.violations.lines(); len(v) > 0 && !c.opts.AllowViolations {
		c.t.Errorf("the server refused %d action(s) of honest processes; first: %s", len(v), v[0])
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

// violationLog keeps the server's permission-violation lines; the rest of
// the server's log is dropped.
type violationLog struct {
	mu sync.Mutex
	v  []string
}

func (l *violationLog) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	// A reply sent after the requester's connection was dropped and came
	// back (a frozen process) has lost its response permission: refused,
	// and harmless. Any other refusal is a missing permission.
	if strings.Contains(msg, "Violation") && !strings.Contains(msg, `Publish Violation - Subject "_INBOX`) {
		l.mu.Lock()
		l.v = append(l.v, msg)
		l.mu.Unlock()
	}
}
func (l *violationLog) Noticef(string, ...any) {}
func (l *violationLog) Warnf(string, ...any)   {}
func (l *violationLog) Fatalf(string, ...any)  {}
func (l *violationLog) Debugf(string, ...any)  {}
func (l *violationLog) Tracef(string, ...any)  {}

func (l *violationLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.v...)
}

// Violations returns the server's permission-violation log lines so far.
func (c *Cluster) Violations() []string { return c.violations.lines() }
