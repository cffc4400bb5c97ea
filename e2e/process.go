package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drover-run/drover/pkg/topics"
)

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
	for _, kv := range c.Auth.Env(topics.Role(kind)) {
		k, v, _ := strings.Cut(kv, "=")
		if !c.opts.System && strings.HasPrefix(k, "DROVER_NATS_SYSTEM_") {
			continue
		}
		env[k] = v
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
//
// A SIGTERM that arrives before the process has installed its handler
// kills it like SIGKILL; an operator's stop is not that fast, so Term
// first waits (bounded by within) for the process's first log line,
// written once the handler is in place.
func (p *Proc) Term(within time.Duration) int {
	Poll(within, func() bool {
		st, err := os.Stat(p.LogPath)
		return !p.Alive() || (err == nil && st.Size() > 0)
	})
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
