// Package e2e runs Drover as real processes and breaks them: an embedded
// nats-server that outlives every process, job managers, job-master nodes
// and worker nodes started from the real binaries, and helpers to kill -9,
// SIGTERM, SIGSTOP and SIGCONT them, submit jobs, wait with deadlines, read
// /metrics and logs, and check the KV history for two live incarnations.
//
// The tests of this package are the failover and fencing tests of DESIGN
// §4, §5 and §7; the same harness drives the failover benchmark.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/api"
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

// DefaultTiming is DESIGN §6.
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

// Proc is one running (or ended) service process.
type Proc struct {
	c    *Cluster
	Kind Kind
	// ID is the node id (DROVER_NODE_ID), kept across restarts.
	ID string
	// Name is ID plus the incarnation number, e.g. jm-1#2.
	Name    string
	LogPath string
	env     map[string]string
	cmd     *exec.Cmd
	done    chan struct{}
	// state after done
	exitErr error
	started time.Time

	httpOnce sync.Once
	httpAddr string
}

// Start runs one process of kind with node id id. extra overrides the
// environment (KEY=VALUE).
func (c *Cluster) Start(kind Kind, id string, extra ...string) *Proc {
	c.t.Helper()
	env := map[string]string{
		"DROVER_NATS_URL":   c.URL,
		"DROVER_NODE_ID":    id,
		"DROVER_HTTP_ADDR":  "127.0.0.1:0",
		"DROVER_LOG_FORMAT": "json",
		"DROVER_LOG_LEVEL":  "info",
		// flaky, beat and stubborn drive the failure tests.
		"DROVER_TEST_JOB_TYPES": "true",
	}
	for k, v := range c.Timing.env() {
		env[k] = v
	}
	if c.opts.System {
		env["DROVER_NATS_USER"], env["DROVER_NATS_PASSWORD"] = appUser, appPass
		if kind == JobManager {
			env["DROVER_NATS_SYSTEM_USER"], env["DROVER_NATS_SYSTEM_PASSWORD"] = sysUser, sysPass
		}
	}
	for k, v := range c.opts.Env {
		env[k] = v
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	p := &Proc{c: c, Kind: kind, ID: id, env: env}
	if err := p.spawn(); err != nil {
		c.t.Fatalf("start %s %s: %v", kind, id, err)
	}
	return p
}

func (p *Proc) spawn() error {
	c := p.c
	c.mu.Lock()
	c.seq[p.ID]++
	p.Name = fmt.Sprintf("%s#%d", p.ID, c.seq[p.ID])
	c.mu.Unlock()
	p.LogPath = filepath.Join(c.Dir, fmt.Sprintf("%s.%d.log", p.ID, c.seq[p.ID]))
	f, err := os.Create(p.LogPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(Bin(p.Kind))
	cmd.Stdout, cmd.Stderr = f, f
	for k, v := range p.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"))
	// A child dies with the test binary, whatever kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	p.cmd, p.done, p.started = cmd, make(chan struct{}), time.Now()
	p.httpOnce, p.httpAddr = sync.Once{}, ""
	go func() {
		p.exitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return nil
}

// Restart starts a new incarnation with the same id and environment; the
// previous one must have ended.
func (p *Proc) Restart() *Proc {
	p.c.t.Helper()
	if p.Alive() {
		p.c.t.Fatalf("restart %s: still running", p.Name)
	}
	np := &Proc{c: p.c, Kind: p.Kind, ID: p.ID, env: p.env}
	if err := np.spawn(); err != nil {
		p.c.t.Fatalf("restart %s: %v", p.ID, err)
	}
	return np
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Alive reports whether the process has not exited.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil && p.Alive() {
		p.c.t.Logf("signal %v to %s: %v", sig, p.Name, err)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGCONT) // a stopped process dies as well, but be plain
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Term sends SIGTERM and waits up to within for a clean exit; it returns
// the exit code (-1 if it did not exit in time, then it is killed).
func (p *Proc) Term(within time.Duration) int {
	p.Signal(syscall.SIGTERM)
	code, ok := p.Wait(within)
	if !ok {
		p.Kill()
		return -1
	}
	return code
}

// Stop freezes the process (SIGSTOP); Cont resumes it.
func (p *Proc) Stop() { p.Signal(syscall.SIGSTOP) }

// Cont resumes a frozen process.
func (p *Proc) Cont() { p.Signal(syscall.SIGCONT) }

// Wait waits up to within for the process to exit and returns its exit code.
func (p *Proc) Wait(within time.Duration) (int, bool) {
	select {
	case <-p.done:
	case <-time.After(within):
		return 0, false
	}
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.ExitCode(), true
	}
	return 0, true
}

// Tail returns the last n lines of the process log.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogEntry is one JSON log line of a process.
type LogEntry map[string]any

// Msg returns the log message.
func (e LogEntry) Msg() string { s, _ := e["msg"].(string); return s }

// Str returns a string field.
func (e LogEntry) Str(k string) string { s, _ := e[k].(string); return s }

// Num returns a numeric field.
func (e LogEntry) Num(k string) float64 { f, _ := e[k].(float64); return f }

// Logs returns every JSON line the process logged so far (others are skipped).
func (p *Proc) Logs() []LogEntry {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []LogEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e LogEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// CountLogs counts log lines whose message contains msg.
func (p *Proc) CountLogs(msg string) int {
	n := 0
	for _, e := range p.Logs() {
		if strings.Contains(e.Msg(), msg) {
			n++
		}
	}
	return n
}

// HTTPAddr returns the address of the process's operator listener, read
// from its "http listening" log line (it listens on a random port).
func (p *Proc) HTTPAddr() string {
	p.c.t.Helper()
	p.httpOnce.Do(func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			for _, e := range p.Logs() {
				if e.Msg() == "http listening" {
					p.httpAddr = e.Str("addr")
					return
				}
			}
			if !p.Alive() {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	if p.httpAddr == "" {
		p.c.t.Fatalf("%s: no http listener in its log", p.Name)
	}
	return p.httpAddr
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

// Readyz returns the /readyz answer and its status code.
func (p *Proc) Readyz() (map[string]any, int, error) {
	resp, err := httpClient.Get("http://" + p.HTTPAddr() + "/readyz")
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var out map[string]any
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out, resp.StatusCode, err
}

// Leading reports whether a job manager says it holds the lease.
func (p *Proc) Leading() bool {
	if !p.Alive() {
		return false
	}
	r, _, err := p.Readyz()
	if err != nil {
		return false
	}
	l, _ := r["leader"].(bool)
	return l
}

// Metrics scrapes /metrics into a map from series ("name" or
// `name{labels}`) to value.
func (p *Proc) Metrics() (map[string]float64, error) {
	resp, err := httpClient.Get("http://" + p.HTTPAddr() + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return ParseMetrics(b), nil
}

// ParseMetrics reads the Prometheus text format.
func ParseMetrics(b []byte) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// Sum adds every series of metric name (any labels).
func Sum(m map[string]float64, name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
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

// Nodes returns the live nodes of kind.
func (c *Cluster) Nodes(kind string) []api.Node {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ns, err := c.Store.ListNodes(ctx, kind)
	if err != nil {
		return nil
	}
	return ns
}

// WaitNodes waits until exactly the given node ids of kind are present.
func (c *Cluster) WaitNodes(kind string, ids ...string) {
	c.t.Helper()
	want := append([]string(nil), ids...)
	sort.Strings(want)
	c.Eventually(30*time.Second, fmt.Sprintf("%s nodes %v", kind, want), func() bool {
		var got []string
		for _, n := range c.Nodes(kind) {
			got = append(got, n.ID)
		}
		return strings.Join(got, ",") == strings.Join(want, ",")
	})
}

// WaitLeader waits until one of the job managers leads and returns it.
func (c *Cluster) WaitLeader(within time.Duration, jms ...*Proc) *Proc {
	c.t.Helper()
	var leader *Proc
	c.Eventually(within, "a leading job manager", func() bool {
		for _, p := range jms {
			if p.Leading() {
				leader = p
				return true
			}
		}
		return false
	})
	return leader
}

// Submit submits a job through the API, retrying while no replica answers.
func (c *Cluster) Submit(spec api.Spec) *api.Job {
	c.t.Helper()
	j, err := c.TrySubmit(spec)
	if err != nil {
		c.t.Fatalf("submit %s: %v", spec.ID, err)
	}
	return j
}

// TrySubmit is Submit returning the error; it may run off the test's goroutine.
func (c *Cluster) TrySubmit(spec api.Spec) (*api.Job, error) {
	var j *api.Job
	var err error
	Poll(20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		j, err = c.Client.Submit(ctx, spec)
		return err == nil || api.ErrorCode(err) != api.CodeUnavailable
	})
	return j, err
}

// Beat submits a beat job (testjobs): a master and workers that write a
// beat to business KV every tick until canceled.
func (c *Cluster) Beat(id string, workers, intervalMS, burst int) *api.Job {
	c.t.Helper()
	cfg := fmt.Sprintf(`{"workers":%d,"interval_ms":%d,"burst":%d}`, workers, intervalMS, max(burst, 1))
	return c.Submit(api.Spec{ID: id, Type: "beat", Config: json.RawMessage(cfg)})
}

// Cancel cancels a job through the API.
func (c *Cluster) Cancel(id string) *api.Job {
	c.t.Helper()
	var j *api.Job
	var err error
	Poll(20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		j, err = c.Client.Cancel(ctx, id)
		return err == nil || api.ErrorCode(err) != api.CodeUnavailable
	})
	if err != nil {
		c.t.Fatalf("cancel %s: %v", id, err)
	}
	return j
}

// Counter submits a counter job.
func (c *Cluster) Counter(id string, workers, target, intervalMS int) *api.Job {
	c.t.Helper()
	cfg := fmt.Sprintf(`{"workers":%d,"target":%d,"interval_ms":%d}`, workers, target, intervalMS)
	return c.Submit(api.Spec{ID: id, Type: "counter", Config: json.RawMessage(cfg)})
}

// Job reads a job from the state store (no job manager needed).
func (c *Cluster) Job(id string) *api.Job {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	j, _, err := c.Store.GetJob(ctx, id)
	if err != nil {
		c.t.Fatalf("get job %s: %v", id, err)
	}
	return j
}

// WaitJob polls the job until cond holds.
func (c *Cluster) WaitJob(id string, within time.Duration, what string, cond func(*api.Job) bool) *api.Job {
	c.t.Helper()
	var j *api.Job
	c.Eventually(within, fmt.Sprintf("job %s %s", id, what), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		j, _, err = c.Store.GetJob(ctx, id)
		return err == nil && cond(j)
	})
	return j
}

// WaitTerminal waits until the job is terminal.
func (c *Cluster) WaitTerminal(id string, within time.Duration) *api.Job {
	c.t.Helper()
	return c.WaitJob(id, within, "terminal", func(j *api.Job) bool { return j.State.Terminal() })
}

// Workers reads a job's worker records.
func (c *Cluster) Workers(job string) []kvstate.WorkerRecord {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ws, err := c.Store.ListWorkers(ctx, job)
	if err != nil {
		return nil
	}
	out := make([]kvstate.WorkerRecord, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.Record)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// WaitWorkersOnline waits until n workers of the job are online.
func (c *Cluster) WaitWorkersOnline(job string, n int, within time.Duration) []kvstate.WorkerRecord {
	c.t.Helper()
	var ws []kvstate.WorkerRecord
	c.Eventually(within, fmt.Sprintf("%d workers of %s online", n, job), func() bool {
		ws = c.Workers(job)
		online := 0
		for _, w := range ws {
			if w.State == kvstate.WorkerOnline {
				online++
			}
		}
		return online == n
	})
	return ws
}

// WaitProgress waits until every worker of the job reported at least done
// steps (counter status).
func (c *Cluster) WaitProgress(job string, done int, within time.Duration) {
	c.t.Helper()
	c.Eventually(within, fmt.Sprintf("workers of %s past step %d", job, done), func() bool {
		ws := c.Workers(job)
		for _, w := range ws {
			var st struct {
				Done int `json:"done"`
			}
			if json.Unmarshal(w.Status, &st) != nil || st.Done < done {
				return false
			}
		}
		return len(ws) > 0
	})
}

// Master reads a job's master record.
func (c *Cluster) Master(job string) *kvstate.MasterRecord {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	m, _, err := c.Store.GetMaster(ctx, job)
	if err != nil {
		return nil
	}
	return m
}

// Events returns every event of a job so far, from the events stream.
func (c *Cluster) Events(job string) []api.Event {
	c.t.Helper()
	subj, err := c.Space.JobEvents(job)
	if err != nil {
		c.t.Fatal(err)
	}
	js, _ := jetstream.New(c.NC)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, c.Space.EventsStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj}})
	if err != nil {
		c.t.Fatalf("events of %s: %v", job, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		c.t.Fatalf("events of %s: %v", job, err)
	}
	var out []api.Event
	for pending := info.NumPending; pending > 0; {
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			c.t.Fatalf("events of %s: %v", job, err)
		}
		n := 0
		for m := range batch.Messages() {
			var ev api.Event
			if json.Unmarshal(m.Data(), &ev) == nil {
				out = append(out, ev)
			}
			n++
		}
		if n == 0 {
			break
		}
		pending -= uint64(n)
	}
	return out
}

// CounterDetail is a finished counter job's detail.
type CounterDetail struct {
	Counts  map[string]int `json:"counts"`
	Total   int            `json:"total"`
	Workers int            `json:"workers"`
	Target  int            `json:"target"`
}

// CheckCounter fails the test unless the job finished with its exact total.
func (c *Cluster) CheckCounter(j *api.Job, workers, target int) {
	c.t.Helper()
	if err := CounterExact(j, workers, target); err != nil {
		c.t.Fatal(err)
	}
}

// CounterExact says why a counter job did not finish with total == workers*target.
func CounterExact(j *api.Job, workers, target int) error {
	if j.State != api.StateFinished {
		return fmt.Errorf("job %s ended %s (error %v), want finished", j.ID, j.State, j.Error)
	}
	var d CounterDetail
	if err := json.Unmarshal(j.Detail, &d); err != nil {
		return fmt.Errorf("job %s detail %s: %v", j.ID, j.Detail, err)
	}
	if d.Total != workers*target {
		return fmt.Errorf("job %s total %d, want %d exactly (counts %v)", j.ID, d.Total, workers*target, d.Counts)
	}
	for id, n := range d.Counts {
		if n != target {
			return fmt.Errorf("job %s worker %s counted %d, want %d", j.ID, id, n, target)
		}
	}
	return nil
}

// NodeOf returns the process among procs whose id is node.
func NodeOf(node string, procs ...*Proc) *Proc {
	for _, p := range procs {
		if p.ID == node {
			return p
		}
	}
	return nil
}

// ---- KV witness ----

// Witness records every write the state bucket accepted, in stream order,
// from when it started. Rejected (fenced) writes never reach the stream, so
// the witness sees what took effect. A record overwritten before the
// witness read it may be missed (History is 1), so checks on it only rely
// on order, never on completeness.
type Witness struct {
	mu      sync.Mutex
	entries []WitnessEntry
	cc      jetstream.ConsumeContext
}

// WitnessEntry is one accepted write.
type WitnessEntry struct {
	Seq     uint64
	Key     string
	Value   []byte
	Deleted bool
}

// StartWitness follows the state bucket from its first message.
func (c *Cluster) StartWitness() *Witness {
	c.t.Helper()
	js, _ := jetstream.New(c.NC)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream := "KV_" + c.Space.StateBucket()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		c.t.Fatalf("witness: %v", err)
	}
	w := &Witness{}
	prefix := "$KV." + c.Space.StateBucket() + "."
	w.cc, err = cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		op := m.Headers().Get("KV-Operation")
		e := WitnessEntry{Seq: md.Sequence.Stream, Key: strings.TrimPrefix(m.Subject(), prefix),
			Value: append([]byte(nil), m.Data()...), Deleted: op == "DEL" || op == "PURGE"}
		w.mu.Lock()
		w.entries = append(w.entries, e)
		w.mu.Unlock()
	})
	if err != nil {
		c.t.Fatalf("witness: %v", err)
	}
	c.t.Cleanup(w.cc.Stop)
	return w
}

// Entries returns what the witness saw so far.
func (w *Witness) Entries() []WitnessEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WitnessEntry(nil), w.entries...)
}

// Check verifies, in the order the stream accepted the writes, that:
//   - every counter checkpoint (b.<job>.count.<worker>) and every beat
//     (b.<job>.beat.<who>) only ever went up: two live incarnations of a
//     worker or master making progress at once would write the same step
//     twice or go back;
//   - no worker record (w.<job>.<worker>) went back to an older worker
//     epoch, and no master record (m.<job>) to an older master epoch: a
//     stale incarnation's write never took effect after its successor's.
//
// It returns every violation found.
func (w *Witness) Check() []string {
	var bad []string
	counts := map[string]int{}
	epochs := map[string]uint64{}
	for _, e := range w.Entries() {
		if e.Deleted {
			delete(counts, e.Key)
			delete(epochs, e.Key)
			continue
		}
		switch {
		case strings.HasPrefix(e.Key, "b.") && (strings.Contains(e.Key, ".count.") || strings.Contains(e.Key, ".beat.")):
			n, err := strconv.Atoi(string(e.Value))
			if err != nil {
				bad = append(bad, fmt.Sprintf("seq %d %s: not a count: %q", e.Seq, e.Key, e.Value))
				continue
			}
			if prev, ok := counts[e.Key]; ok && n <= prev {
				bad = append(bad, fmt.Sprintf("seq %d %s: count %d after %d (two writers)", e.Seq, e.Key, n, prev))
			}
			counts[e.Key] = n
		case strings.HasPrefix(e.Key, "w.") || strings.HasPrefix(e.Key, "m."):
			var r struct {
				Epoch uint64 `json:"epoch"`
			}
			if json.Unmarshal(e.Value, &r) != nil {
				continue
			}
			if prev := epochs[e.Key]; r.Epoch < prev {
				bad = append(bad, fmt.Sprintf("seq %d %s: epoch %d written after epoch %d (stale writer)", e.Seq, e.Key, r.Epoch, prev))
			}
			epochs[e.Key] = max(epochs[e.Key], r.Epoch)
		}
	}
	return bad
}

// Count returns how many accepted writes the witness saw for keys with prefix.
func (w *Witness) Count(prefix string) int {
	n := 0
	for _, e := range w.Entries() {
		if strings.HasPrefix(e.Key, prefix) {
			n++
		}
	}
	return n
}

// ---- fenced writes ----

// FencedStops counts, in a process's log, the incarnations that stopped
// because they were fenced (a write refused, or a newer epoch seen).
func FencedStops(p *Proc) int {
	return p.CountLogs("fenced by a newer")
}

// MastersEnded returns the master incarnations ("job@epoch") that a
// job-master node's log shows ended, whatever the way: fenced, stopped,
// exited, or ended on an error (a request lost with its connection).
func MastersEnded(p *Proc) map[string]bool {
	out := map[string]bool{}
	for _, e := range p.Logs() {
		switch msg := e.Msg(); {
		case strings.Contains(msg, "fenced by a newer"), msg == "master stopped", msg == "master exited", msg == "master ended":
			out[fmt.Sprintf("%s@%d", e.Str("job_id"), int(e.Num("epoch")))] = true
		}
	}
	return out
}

// WorkersEnded returns the worker incarnations ("job/worker@epoch") that a
// worker node's log shows ended, whatever the way: fenced, self-fenced,
// stopped, exited.
func WorkersEnded(p *Proc) map[string]bool {
	out := map[string]bool{}
	for _, e := range p.Logs() {
		switch msg := e.Msg(); {
		case strings.Contains(msg, "fenced by a newer"), strings.Contains(msg, "fenced itself"),
			msg == "worker stopped by its master", msg == "worker exited", msg == "worker ended":
			out[fmt.Sprintf("%s/%s@%d", e.Str("job_id"), e.Str("worker_id"), int(e.Num("worker_epoch")))] = true
		}
	}
	return out
}

// RejectedWrites counts, in a process's log, the writes the server refused
// because a newer epoch existed: the runtime logs each one ("write
// refused: a newer epoch exists") and counts it in
// drover_runtime_fenced_writes_rejected_total.
func RejectedWrites(p *Proc) int {
	return p.CountLogs("write refused: a newer epoch exists")
}

// jsonLine is a helper for debugging output.
func jsonLine(v any) string {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(v)
	return strings.TrimSpace(b.String())
}
