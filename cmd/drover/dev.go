package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/drover-run/drover/internal/auth"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
	"github.com/drover-run/drover/pkg/topics"
)

// devFlags configure `drover dev`.
type devFlags struct {
	port       int
	data       string
	jobmasters int
	workers    int
	httpBase   int
	binDir     string
	grace      time.Duration
	startup    time.Duration
	natsLog    bool
	temp       bool
	monitor    int
	buckets    string
}

func devCommand() *command {
	return &command{
		name:    "dev",
		summary: "Run a local system: embedded NATS, a job manager, job-master and worker nodes, logs prefixed; Ctrl-C stops all.",
		setup: func(fs *flag.FlagSet) runner {
			f := &devFlags{}
			fs.IntVar(&f.port, "port", 4222, "`port` of the embedded NATS server on 127.0.0.1")
			fs.StringVar(&f.data, "data", filepath.Join(".drover", "nats"), "JetStream store `dir` of the embedded NATS server")
			fs.IntVar(&f.jobmasters, "jobmasters", 1, "job-master nodes to run")
			fs.IntVar(&f.workers, "workers", 2, "worker nodes to run")
			fs.IntVar(&f.httpBase, "http-base-port", 8080, "HTTP `port` of the job manager; job-master then worker nodes take the next ones (0: each picks a free port)")
			fs.StringVar(&f.binDir, "bin-dir", "", "run the jobmanager, jobmaster and worker binaries of `dir` (default: this drover runs each service itself)")
			fs.BoolVar(&f.temp, "temp", false, "keep the data in a throwaway directory, removed on exit (instead of --data)")
			fs.IntVar(&f.monitor, "monitor-port", 8222, "HTTP monitoring `port` of the embedded NATS server on 127.0.0.1 (-1: any free port, 0: off)")
			fs.DurationVar(&f.grace, "stop-timeout", 10*time.Second, "how long children get to stop after SIGTERM before SIGKILL")
			fs.DurationVar(&f.startup, "start-timeout", 60*time.Second, "how long to wait for the job manager to answer")
			fs.BoolVar(&f.natsLog, "nats-log", false, "show the embedded NATS server's notices (warnings and errors always show)")
			fs.StringVar(&f.buckets, "buckets", strings.Join(auth.DefaultDataBuckets, ","), "object-store `buckets` clients and jobs may use on the embedded NATS, comma-separated")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 0, 0, ""); err != nil {
					return err
				}
				if err := f.validate(); err != nil {
					return err
				}
				dataSet := false
				fs.Visit(func(fl *flag.Flag) { dataSet = dataSet || fl.Name == "data" })
				if f.temp && dataSet {
					return usagef("--temp and --data exclude each other")
				}
				if f.temp {
					dir, err := os.MkdirTemp("", "drover-dev-")
					if err != nil {
						return err
					}
					defer os.RemoveAll(dir)
					f.data = filepath.Join(dir, "nats")
				}
				return c.dev(ctx, f)
			}
		},
	}
}

func (f *devFlags) validate() error {
	switch {
	case f.port < 0 || f.port > 65535:
		return usagef("--port %d is not a port", f.port)
	case f.monitor < -1 || f.monitor > 65535:
		return usagef("--monitor-port %d is not a port (-1: any, 0: off)", f.monitor)
	case f.jobmasters < 0 || f.workers < 0:
		return usagef("--jobmasters and --workers must not be negative")
	case f.httpBase < 0 || f.httpBase+f.jobmasters+f.workers > 65535:
		return usagef("--http-base-port %d leaves no room for %d services", f.httpBase, 1+f.jobmasters+f.workers)
	case f.grace <= 0 || f.startup <= 0:
		return usagef("--stop-timeout and --start-timeout must be positive")
	}
	return nil
}

// httpAddr is the listener of the i-th child (0 = the job manager). There
// is no "off": a service given no address listens on its default port.
func (f *devFlags) httpAddr(i int) string {
	if f.httpBase == 0 {
		return "127.0.0.1:0"
	}
	return "127.0.0.1:" + strconv.Itoa(f.httpBase+i)
}

// children lists the processes to run, in start order: self re-executed
// as `<self> service <name>`, or the binaries of binDir if set.
func (f *devFlags) children(self, binDir string) []*child {
	var out []*child
	add := func(name, bin, node string) {
		addr := f.httpAddr(len(out))
		ch := &child{
			name: name,
			role: topics.Role(bin),
			path: self,
			args: []string{"service", bin},
			env:  []string{"DROVER_NODE_ID=" + node, "DROVER_HTTP_ADDR=" + addr},
			http: addr,
		}
		if binDir != "" {
			ch.path, ch.args = filepath.Join(binDir, bin), nil
		}
		out = append(out, ch)
	}
	add("jobmanager", "jobmanager", "jobmanager-1")
	for i := 1; i <= f.jobmasters; i++ {
		n := fmt.Sprintf("jobmaster-%d", i)
		add(n, "jobmaster", n)
	}
	for i := 1; i <= f.workers; i++ {
		n := fmt.Sprintf("worker-%d", i)
		add(n, "worker", n)
	}
	return out
}

// findBinDir checks the service binaries of --bin-dir ("" without it).
func (f *devFlags) findBinDir() (string, error) {
	dir := f.binDir
	if dir == "" {
		return "", nil
	}
	var missing []string
	for _, b := range []string{"jobmanager", "jobmaster", "worker"} {
		if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return "", &api.Error{Code: api.CodeFailedPrecondition, Message: fmt.Sprintf(
			"%s not found in %s; build them first (make build), or point --bin-dir at them", strings.Join(missing, ", "), dir)}
	}
	return dir, nil
}

// dev runs the local system until ctx ends (Ctrl-C, SIGTERM), then stops it.
func (c *cli) dev(ctx context.Context, f *devFlags) error {
	binDir, err := f.findBinDir()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this executable to run the services: %w", err)
	}
	children := f.children(self, binDir)
	httpEnv, note, err := devHTTPAuth(f.data, children[0].http, c.getenv)
	if err != nil {
		return err
	}
	children[0].env, children[0].note = append(children[0].env, httpEnv...), note
	names := []string{"dev", "nats"}
	for _, ch := range children {
		names = append(names, ch.name)
	}
	color := c.tty && c.getenv("NO_COLOR") == ""
	mux := newLogMux(c.stdout, color, names)

	// An existing NATS (-s/--server or DROVER_NATS_URL) replaces the
	// embedded one; NATS_URL and nats contexts, which may well point at
	// another system, do not.
	natsURL := c.g.natsURL
	if natsURL == "" {
		natsURL = c.getenv("DROVER_NATS_URL")
	}
	external := natsURL != ""
	var ns *server.Server
	var monitorURL string
	var ids *auth.Deployment
	if external {
		mux.line("dev", "using the NATS server at "+natsURL+"; no embedded server")
	} else {
		data, err := filepath.Abs(f.data)
		if err != nil {
			return err
		}
		space, err := topics.New(c.g.prefix)
		if err != nil {
			return usagef("--prefix: %v", err)
		}
		buckets := splitList(f.buckets)
		for _, b := range buckets {
			if err := topics.ValidateID("bucket", b); err != nil {
				return usagef("--buckets: %v", err)
			}
		}
		if f.monitor > 0 {
			if err := portFree(fmt.Sprintf("127.0.0.1:%d", f.monitor)); err != nil {
				mux.alert("dev", fmt.Sprintf("NATS monitoring: %v; using a free port instead", err))
				f.monitor = -1
			}
		}
		ns, ids, err = startNATS("127.0.0.1", f.port, f.monitor, data, space, buckets, natsLog{mux: mux, notices: f.natsLog})
		if err != nil {
			return &api.Error{Code: api.CodeUnavailable, Message: err.Error()}
		}
		natsURL = ns.ClientURL()
		mux.line("dev", fmt.Sprintf("embedded NATS with JetStream on %s, data in %s; identities in %s", natsURL, data, ids.Dir))
		if addr := ns.MonitorAddr(); addr != nil {
			monitorURL = "http://" + addr.String()
		}
	}
	stopNATS := func() {
		if ns != nil {
			ns.Shutdown()
			ns.WaitForShutdown()
			mux.line("dev", "embedded NATS stopped")
		}
	}

	environ := os.Environ()
	environ = append(environ,
		"DROVER_NATS_URL="+natsURL,
		"DROVER_PREFIX="+c.g.prefix,
		"DROVER_LOG_FORMAT="+envOr(c.getenv, "DROVER_LOG_FORMAT", "console"),
	)
	if c.g.creds != "" {
		environ = append(environ, "DROVER_NATS_CREDS="+c.g.creds)
	}
	// Without the launcher an embedded NATS is gone too: nothing is left to
	// hand over to, so its children die at once. On a shared NATS they get
	// SIGTERM and hand their work over.
	deathSig := syscall.SIGKILL
	if external {
		deathSig = syscall.SIGTERM
	}

	for _, ch := range children {
		if err := portFree(ch.http); err != nil {
			mux.alert("dev", fmt.Sprintf("%s: %v; it will refuse to start (choose other ports with --http-base-port)", ch.name, err))
		}
		if ids != nil {
			// Each child connects with its role's identity.
			ch.env = append(ch.env, ids.Env(ch.role)...)
		}
	}

	sp := newSpawner()
	exits := make(chan exit, len(children))
	var started []*child
	for _, ch := range children {
		if err := ch.start(sp, mux, environ, deathSig, exits); err != nil {
			c.stopChildren(mux, started, f.grace)
			sp.stop()
			stopNATS()
			return err
		}
		started = append(started, ch)
		http := ""
		if ch.http != "" {
			http = ", http " + ch.http
		}
		mux.line("dev", fmt.Sprintf("started %s (pid %d%s)", ch.name, ch.cmd.Process.Pid, http))
	}

	readyCtx, cancelReady := context.WithCancel(ctx)
	ready := make(chan error, 1)
	go func() { ready <- c.awaitReady(readyCtx, natsURL, f) }()

	var runErr error
	isReady := false
loop:
	for {
		select {
		case <-ctx.Done():
			mux.line("dev", "stopping (Ctrl-C again to kill at once)")
			break loop
		case err := <-ready:
			if err != nil {
				mux.alert("dev", "start-up: "+err.Error())
				if ctx.Err() == nil {
					runErr = &api.Error{Code: api.CodeUnavailable, Message: err.Error()}
					break loop
				}
				continue
			}
			isReady = true
			mux.raw(c.banner(natsURL, monitorURL, external, f, children, ids))
		case e := <-exits:
			mux.alert("dev", fmt.Sprintf("%s exited unexpectedly (%s); see its log above. The others keep running; Ctrl-C stops them.", e.c.name, describeExit(e.err)))
			if !isReady && e.c.name == "jobmanager" {
				runErr = &api.Error{Code: api.CodeUnavailable, Message: "the job manager exited during start-up (" + describeExit(e.err) + ")"}
				break loop
			}
		}
	}
	cancelReady()
	c.stopChildren(mux, started, f.grace)
	sp.stop()
	stopNATS()
	if runErr != nil {
		return runErr
	}
	mux.line("dev", "stopped")
	return nil
}

// portFree checks that a fixed listen address is free, so a clash is
// reported once, clearly, rather than as an error line among the logs.
func portFree(addr string) error {
	if addr == "" || strings.HasSuffix(addr, ":0") {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s is in use", addr)
	}
	return ln.Close()
}

// stopChildren sends SIGTERM to every running child, waits up to grace
// (cut short by another Ctrl-C), then kills what is left.
func (c *cli) stopChildren(mux *logMux, children []*child, grace time.Duration) {
	force := make(chan os.Signal, 1)
	signal.Notify(force, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(force)
	for _, ch := range children {
		if ch.running() {
			_ = ch.signal(syscall.SIGTERM)
		}
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for _, ch := range children {
		select {
		case <-ch.done:
			continue
		case <-deadline.C:
			mux.alert("dev", fmt.Sprintf("children still running after %s; killing them", grace))
		case <-force:
			mux.alert("dev", "killing the children")
		}
		break
	}
	for _, ch := range children {
		if ch.running() {
			_ = ch.signal(syscall.SIGKILL)
		}
	}
	for _, ch := range children {
		select {
		case <-ch.done:
		case <-time.After(5 * time.Second):
			mux.alert("dev", fmt.Sprintf("%s (pid %d) did not exit after SIGKILL", ch.name, ch.cmd.Process.Pid))
		}
	}
}

// awaitReady returns once the job manager answers the API and the nodes
// have registered (the latter bounded, as a node may be slow or broken).
func (c *cli) awaitReady(ctx context.Context, natsURL string, f *devFlags) error {
	ctx, cancel := context.WithTimeout(ctx, f.startup)
	defer cancel()
	cc := *c
	cc.g.natsURL = natsURL
	// What the services use, not what a nats context may say.
	cc.devOnly = true
	cc.g.timeout = time.Second
	var cl *client.Client
	for cl == nil {
		var err error
		if cl, err = cc.connect(); err != nil {
			if werr := sleepCtx(ctx, 200*time.Millisecond); werr != nil {
				return fmt.Errorf("no NATS at %s: %v", natsURL, err)
			}
		}
	}
	defer cl.Conn().Close()
	var last error
	for {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		_, _, err := cl.List(rctx, api.ListRequest{Limit: 1})
		rcancel()
		if err == nil || api.ErrorCode(err) != api.CodeUnavailable {
			break
		}
		last = err
		if sleepCtx(ctx, 200*time.Millisecond) != nil {
			return fmt.Errorf("the job manager did not answer within %s: %v", f.startup, last)
		}
	}
	want := f.jobmasters + f.workers
	nctx, ncancel := context.WithTimeout(ctx, 15*time.Second)
	defer ncancel()
	for {
		rctx, rcancel := context.WithTimeout(nctx, time.Second)
		nodes, err := cl.Nodes(rctx)
		rcancel()
		if err == nil && len(nodes) >= want {
			return nil
		}
		if sleepCtx(nctx, 200*time.Millisecond) != nil {
			// The API answers; say so even if some node is missing.
			return nil
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// banner tells how to use the system that just came up.
func (c *cli) banner(natsURL, monitorURL string, external bool, f *devFlags, children []*child, ids *auth.Deployment) string {
	drover := selfPath()
	var natsFlag, droverFlags string
	if natsURL != defaultNATSURL {
		natsFlag = " -s " + natsURL
		droverFlags = " -s " + natsURL
	}
	if c.g.prefix != "drover" {
		droverFlags += " --prefix " + c.g.prefix
	}
	var b strings.Builder
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "Drover is up: NATS %s", natsURL)
	if !external {
		b.WriteString(" (embedded)")
	}
	fmt.Fprintf(&b, ", %d job-master node(s), %d worker node(s).\n", f.jobmasters, f.workers)
	if monitorURL != "" {
		fmt.Fprintf(&b, "NATS monitoring: %s (/varz, /jsz, /connz)\n", monitorURL)
	}
	if f.temp {
		fmt.Fprintf(&b, "Data: %s, removed on exit (--temp)\n", filepath.Dir(f.data))
	}
	if addr := children[0].http; addr != "" && !strings.HasSuffix(addr, ":0") {
		fmt.Fprintf(&b, "Job manager HTTP: http://%s (/api/v1/jobs, /metrics, /readyz)\n", addr)
	}
	b.WriteString(children[0].note)
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "Submit a job with the nats CLI:")
	fmt.Fprintf(&b, "  nats%s req %s.api.v1.jobs.submit '{\"type\":\"counter\",\"config\":{\"workers\":4,\"target\":100}}'\n", natsFlag, c.g.prefix)
	fmt.Fprintln(&b, "or with drover, waiting for the result:")
	fmt.Fprintf(&b, "  %s%s submit --type counter --config '{\"workers\":4,\"target\":100}' --wait\n", drover, droverFlags)
	fmt.Fprintf(&b, "Then: %s%s list | watch ID | events ID | workers ID | nodes | version\n", drover, droverFlags)
	fmt.Fprintf(&b, "The services as NATS sees them: nats%s micro ls\n", natsFlag)
	if ids != nil {
		fmt.Fprintln(&b, "Without credentials you are a client: the API and your data buckets, nothing internal.")
		fmt.Fprintf(&b, "Operator (admin) access: nats%s --nkey %s ...\n", natsFlag, ids.SeedFile(topics.RoleAdmin))
	}
	fmt.Fprintln(&b, "Ctrl-C stops everything.")
	fmt.Fprintln(&b)
	return b.String()
}

// selfPath is how the user can run this binary again: relative to the
// working directory when below it (bin/drover), else absolute.
func selfPath() string {
	exe, err := os.Executable()
	if err != nil {
		return "drover"
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, exe); err == nil && !strings.HasPrefix(rel, "..") {
			if !strings.ContainsRune(rel, filepath.Separator) {
				rel = "." + string(filepath.Separator) + rel
			}
			return rel
		}
	}
	return exe
}
