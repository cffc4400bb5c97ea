package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/drover-run/drover/internal/natstest"
)

var (
	buildMu   sync.Mutex
	buildDir  string
	buildDone = map[string]error{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	if code == 0 {
		// A goroutine of internal/gopool waiting for its next task exits
		// on its own a moment later; it is not a leak.
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/drover-run/drover/internal/gopool.wait")); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// build compiles pkg (relative to the module root) once per test run into
// the directory sub of a shared one, under each of names, and returns that
// directory.
func build(t *testing.T, sub, pkg string, names ...string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir == "" {
		d, err := os.MkdirTemp("", "drover-cli-test-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	dir := filepath.Join(buildDir, sub)
	key := dir + " " + pkg + " " + strings.Join(names, ",")
	err, done := buildDone[key]
	if !done {
		err = os.MkdirAll(dir, 0o755)
		if err == nil {
			err = buildInto(dir, pkg, names)
		}
		buildDone[key] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func buildInto(dir, pkg string, names []string) error {
	tmp := filepath.Join(dir, "tmp-"+strings.NewReplacer("/", "_", ".", "_").Replace(pkg))
	cmd := exec.Command("go", "build", "-o", tmp, pkg)
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	for _, n := range names {
		_ = os.Remove(filepath.Join(dir, n))
		if err := os.Link(tmp, filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// devProc is a `drover dev` launcher running as a process.
type devProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// startDev runs `drover dev args...` from binDir with env added to a
// clean environment (no DROVER_* from the caller's).
func startDev(t *testing.T, binDir string, env []string, args ...string) *devProc {
	t.Helper()
	if _, err := os.Stat(filepath.Join(binDir, "jobmanager")); err == nil {
		args = append([]string{"--bin-dir", binDir}, args...) // the fake services
	}
	cmd := exec.Command(filepath.Join(binDir, "drover"), append([]string{"dev"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DROVER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Dir = t.TempDir()
	d := &devProc{t: t, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		if d.running() {
			_ = cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("drover dev output:\n%s", d.out.String())
		}
	})
	return d
}

func (d *devProc) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

func (d *devProc) waitFor(s string, within time.Duration) {
	d.t.Helper()
	natstest.Eventually(d.t, within, fmt.Sprintf("%q in the launcher's output", s), func() bool {
		return strings.Contains(d.out.String(), s) || !d.running() && !strings.Contains(d.out.String(), s) && d.failNow(s)
	})
}

func (d *devProc) failNow(s string) bool {
	d.t.Fatalf("launcher exited (%v) before printing %q", d.err, s)
	return false
}

// exitWithin waits for the launcher to end and returns its exit code.
func (d *devProc) exitWithin(within time.Duration) int {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(within):
		d.t.Fatalf("launcher still running after %s", within)
	}
	return d.cmd.ProcessState.ExitCode()
}

var startedRe = regexp.MustCompile(`started (\S+) \(pid (\d+)`)

// pids returns the children the launcher said it started.
func (d *devProc) pids() map[string]int {
	out := map[string]int{}
	for _, m := range startedRe.FindAllStringSubmatch(d.out.String(), -1) {
		pid, _ := strconv.Atoi(m[2])
		out[m[1]] = pid
	}
	return out
}

// alive reports whether pid runs (a zombie counts as dead).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

var spaces = regexp.MustCompile(` +`)

// squeeze collapses runs of spaces (the launcher pads its prefixes).
func squeeze(s string) string { return spaces.ReplaceAllString(s, " ") }

func requireLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process checks use /proc and Pdeathsig")
	}
}

func fakeBins(t *testing.T) string {
	build(t, "fake", "./cmd/drover/testdata/fakesvc", "jobmanager", "jobmaster", "worker")
	return build(t, "fake", "./cmd/drover", "drover")
}

func TestDevEmbeddedStartAndStop(t *testing.T) {
	requireLinux(t)
	bin := fakeBins(t)
	port := freePort(t)
	d := startDev(t, bin, nil, "--port", strconv.Itoa(port), "--data", "nats-data", "--http-base-port", "0", "--workers", "3", "--jobmasters", "2")
	d.waitFor("Drover is up", 30*time.Second)
	out := squeeze(d.out.String())
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	for _, want := range []string{
		"embedded NATS with JetStream on " + url,
		"[worker-3] fake worker node=worker-3 nats=" + url + " prefix=drover format=console http=",
		"[jobmaster-2] fake jobmaster node=jobmaster-2",
		"[jobmanager] fake jobmanager node=jobmanager-1",
		"identity=jobmanager.nk",
		"[worker-3] fake worker node=worker-3",
		"identity=worker.nk",
		"[jobmaster-2] fake jobmaster node=jobmaster-2",
		"identity=jobmaster.nk",
		"[worker-1] fake worker-1 writes to stderr too",
		"Drover is up: NATS " + url + " (embedded), 2 job-master node(s), 3 worker node(s).",
		"nats -s " + url + ` req drover.api.v1.jobs.submit '{"type":"counter","config":{"workers":4,"target":100}}'`,
		"-s " + url + ` submit --type counter --config '{"workers":4,"target":100}' --wait`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "\033[") {
		t.Error("colors on a non-terminal")
	}
	if _, err := os.Stat(filepath.Join(d.cmd.Dir, "nats-data", "jetstream")); err != nil {
		t.Errorf("JetStream store not under --data: %v", err)
	}
	// The CLI reaches the system the launcher runs.
	r := runCLI(t, deadline(t, 10*time.Second), map[string]string{"DROVER_NATS_URL": url}, "", "nodes", "--json")
	if r.code != 0 || strings.Count(r.stdout, `"kind"`) != 5 {
		t.Fatalf("nodes: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	// Without credentials one is a client: internal subjects are refused
	// by the server (the full table is e2e's hostile suite).
	anonymousRefused(t, url, "drover.p2p.node.worker.worker-1", "$KV.drover_nodes.worker.worker-1")

	pids := d.pids()
	if len(pids) != 6 {
		t.Fatalf("started %v, want 6 children", pids)
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.exitWithin(20 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	out = d.out.String()
	for _, want := range []string{"fake worker-2 stopping on SIGTERM", "fake jobmanager-1 stopping on SIGTERM", "embedded NATS stopped", "[dev]", "stopped\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d) still running", name, pid)
		}
	}
}

func TestDevExternalNATSChildDeathAndLauncherKill(t *testing.T) {
	requireLinux(t)
	bin := fakeBins(t)
	s := natstest.RunServer(t)
	d := startDev(t, bin, []string{
		"DROVER_NATS_URL=" + s.ClientURL(), "DROVER_PREFIX=other",
		"FAKE_EXIT_worker-1=3", "FAKE_EXIT_AFTER=1s",
	}, "--http-base-port", "0")
	d.waitFor("Drover is up", 30*time.Second)
	d.waitFor("worker-1 exited unexpectedly (exit status 3)", 10*time.Second)
	out := d.out.String()
	for _, want := range []string{
		"using the NATS server at " + s.ClientURL() + "; no embedded server",
		"prefix=other", "http=127.0.0.1:0",
		"nats -s " + s.ClientURL() + " req other.api.v1.jobs.submit",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "embedded NATS") {
		t.Error("started an embedded NATS although DROVER_NATS_URL is set")
	}
	time.Sleep(300 * time.Millisecond)
	if !d.running() {
		t.Fatal("launcher stopped when one child died")
	}
	pids := d.pids()
	delete(pids, "worker-1")
	for name, pid := range pids {
		if !alive(pid) {
			t.Fatalf("%s died with worker-1", name)
		}
	}
	// kill -9 of the launcher takes the children with it (Pdeathsig),
	// although their NATS is still there.
	_ = d.cmd.Process.Kill()
	<-d.done
	natstest.Eventually(t, 10*time.Second, "orphaned children to die", func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
}

func TestDevKillsStubbornChildren(t *testing.T) {
	requireLinux(t)
	bin := fakeBins(t)
	s := natstest.RunServer(t)
	d := startDev(t, bin, []string{"DROVER_NATS_URL=" + s.ClientURL(), "FAKE_IGNORE_TERM=1"},
		"--http-base-port", "0", "--workers", "1", "--stop-timeout", "500ms")
	d.waitFor("Drover is up", 30*time.Second)
	pids := d.pids()
	start := time.Now()
	_ = d.cmd.Process.Signal(os.Interrupt)
	if code := d.exitWithin(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(d.out.String(), "children still running after 500ms; killing them") {
		t.Error("no word about killing")
	}
	if time.Since(start) > 8*time.Second {
		t.Errorf("stopping took %s", time.Since(start))
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d) survived", name, pid)
		}
	}
}

func TestDevJobManagerDiesAtStart(t *testing.T) {
	requireLinux(t)
	bin := fakeBins(t)
	d := startDev(t, bin, []string{"FAKE_EXIT_jobmanager-1=1"},
		"--port", strconv.Itoa(freePort(t)), "--data", "d", "--http-base-port", "0")
	if code := d.exitWithin(30 * time.Second); code != exitError {
		t.Fatalf("exit %d, want %d", code, exitError)
	}
	if !strings.Contains(d.out.String(), "error: unavailable: the job manager exited during start-up (exit status 1)") {
		t.Fatalf("output:\n%s", d.out.String())
	}
	for name, pid := range d.pids() {
		if alive(pid) {
			t.Errorf("%s (pid %d) left running", name, pid)
		}
	}
}

func TestDevRefusals(t *testing.T) {
	ctx := context.Background()
	r := runCLI(t, ctx, nil, "", "dev", "--bin-dir", t.TempDir())
	if r.code != exitError || !strings.Contains(r.stderr, "error: failed_precondition: jobmanager, jobmaster, worker not found in") {
		t.Fatalf("missing binaries: exit %d %q", r.code, r.stderr)
	}
	bin := fakeBins(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	r = runCLI(t, ctx, nil, "", "dev", "--bin-dir", bin, "--port", strconv.Itoa(port), "--data", t.TempDir())
	if r.code != exitError || !strings.Contains(r.stderr, "error: unavailable: cannot listen on 127.0.0.1:"+strconv.Itoa(port)) {
		t.Fatalf("busy port: exit %d %q", r.code, r.stderr)
	}
}

func TestDevChildren(t *testing.T) {
	f := &devFlags{jobmasters: 2, workers: 1, httpBase: 9000}
	var got []string
	for _, c := range f.children("/self/drover", "/b") {
		got = append(got, c.name+" "+c.path+" "+strings.Join(c.args, " ")+"| "+strings.Join(c.env, " "))
	}
	want := []string{
		"jobmanager /b/jobmanager | DROVER_NODE_ID=jobmanager-1 DROVER_HTTP_ADDR=127.0.0.1:9000",
		"jobmaster-1 /b/jobmaster | DROVER_NODE_ID=jobmaster-1 DROVER_HTTP_ADDR=127.0.0.1:9001",
		"jobmaster-2 /b/jobmaster | DROVER_NODE_ID=jobmaster-2 DROVER_HTTP_ADDR=127.0.0.1:9002",
		"worker-1 /b/worker | DROVER_NODE_ID=worker-1 DROVER_HTTP_ADDR=127.0.0.1:9003",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("children:\n%s", strings.Join(got, "\n"))
	}
	// Without --bin-dir, drover runs each service itself.
	got = nil
	for _, c := range f.children("/self/drover", "") {
		got = append(got, c.name+" "+c.path+" "+strings.Join(c.args, " "))
	}
	want = []string{"jobmanager /self/drover service jobmanager", "jobmaster-1 /self/drover service jobmaster",
		"jobmaster-2 /self/drover service jobmaster", "worker-1 /self/drover service worker"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("self children:\n%s", strings.Join(got, "\n"))
	}
	f.httpBase = 0
	if a := f.httpAddr(3); a != "127.0.0.1:0" {
		t.Fatalf("any free port: %q", a)
	}
}

func TestLineWriter(t *testing.T) {
	var b bytes.Buffer
	mux := newLogMux(&b, false, []string{"dev", "worker-1"})
	lw := &lineWriter{mux: mux, name: "worker-1"}
	_, _ = lw.Write([]byte("one\ntw"))
	_, _ = lw.Write([]byte("o\r\nthree"))
	lw.flush()
	mux.line("dev", "hi")
	want := "[worker-1] one\n[worker-1] two\n[worker-1] three\n[dev]      hi\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
	b.Reset()
	colored := newLogMux(&b, true, []string{"a", "b"})
	colored.line("b", "x")
	if b.String() != "\033[32m[b]\033[0m x\n" {
		t.Fatalf("colored %q", b.String())
	}
}

// anonymousRefused checks that a connection without credentials may not
// publish to any of subjects: the server answers a permission violation.
func anonymousRefused(t *testing.T, url string, subjects ...string) {
	t.Helper()
	errs := make(chan error, len(subjects)+1)
	nc, err := nats.Connect(url, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, subj := range subjects {
		if err := nc.Publish(subj, []byte("x")); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subj) {
				t.Errorf("publish %s: %v, want a permission violation", subj, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("publish %s by an anonymous client was not refused", subj)
		}
	}
}
