package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// run executes every selected phase on one embedded server, each phase in
// its own namespace so that none sees another's jobs, and writes results.
func run(o *options) error {
	if o.quoteOnly {
		return requote(o, (&bench{o: o}).failoverPath, nil)
	}
	if err := os.MkdirAll(filepath.Join(o.root, "bench", "results"), 0o755); err != nil {
		return err
	}
	env := collectEnv(o)
	dir, err := os.MkdirTemp("", "drover-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := startServer(dir)
	if err != nil {
		return err
	}
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	logf("nats-server %s on %s, store %s", server.VERSION, srv.ClientURL(), dir)

	r := &results{}
	b := &bench{o: o, srv: srv, url: srv.ClientURL(), r: r}
	phases := b.phases()
	defer func() {
		if b.failoverDir != "" {
			os.RemoveAll(b.failoverDir)
		}
	}()
	for _, p := range phases {
		if !o.selected(p.name) {
			continue
		}
		if env.PhaseLoad == nil {
			env.PhaseLoad = map[string]string{}
		}
		waited, busy := waitQuiet()
		env.PhaseLoad[p.name] = loadavg()
		env.phases = append(env.phases, p.name)
		logf("phase %s (load average %s; waited %s for a quiet machine, %.0f %% busy)",
			p.name, env.PhaseLoad[p.name], waited.Round(time.Millisecond), 100*busy)
		t0 := time.Now()
		stop := b.profile(p.name)
		err := p.f()
		stop()
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if err := dropStreams(b.url); err != nil {
			return fmt.Errorf("%s: clean up: %w", p.name, err)
		}
		logf("phase %s done in %s", p.name, time.Since(t0).Round(time.Millisecond))
	}
	if o.onlyQuoted() {
		if err := b.keepFailover(); err != nil {
			return err
		}
		env.finish()
		return requote(o, b.failoverPath, env)
	}
	r.Wordcount = wordcountResult
	r.quote(o, b.failoverPath)
	if err := b.keepFailover(); err != nil {
		return err
	}
	r.derive()
	env.finish()
	if len(o.only) > 0 {
		// Some phases only: the other figures of the last results stay.
		merged, err := mergeInto(o.path(o.out), r, env)
		if err != nil {
			return err
		}
		r = merged
	}
	return r.save(o, env)
}

// mergeInto overlays the figures of a partial run (r) on the results file
// at path, if there is one: a figure r measured replaces the old one, the
// others stay, and so do the load averages of the phases that did not run.
// The ratios are derived anew, from the figures the table will show.
func mergeInto(path string, r *results, e *env) (*results, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	var old map[string]json.RawMessage
	if err := json.Unmarshal(b, &old); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	nb, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var fresh map[string]json.RawMessage
	if err := json.Unmarshal(nb, &fresh); err != nil {
		return nil, err
	}
	for k, v := range fresh {
		if string(v) != "null" {
			old[k] = v
		}
	}
	mb, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	merged := &results{}
	if err := json.Unmarshal(mb, merged); err != nil {
		return nil, err
	}
	merged.derive()
	if merged.Env != nil {
		for _, p := range phaseNames {
			if l, ok := merged.Env.PhaseLoad[p]; ok && e.PhaseLoad[p] == "" {
				if e.PhaseLoad == nil {
					e.PhaseLoad = map[string]string{}
				}
				e.PhaseLoad[p] = l
			}
		}
	}
	e.phases = e.phases[:0]
	for _, p := range phaseNames {
		if _, ok := e.PhaseLoad[p]; ok {
			e.phases = append(e.phases, p)
		}
	}
	return merged, nil
}

// save writes the results file and the table, and prints the figures.
func (r *results) save(o *options, e *env) error {
	if err := r.write(o.path(o.out), e); err != nil {
		return err
	}
	logf("wrote %s", o.out)
	if o.md != "" {
		if err := writeMarkdown(o.path(o.md), r, e); err != nil {
			return err
		}
		logf("wrote %s", o.md)
	}
	r.print(os.Stdout)
	return nil
}

// path resolves a path given on the command line against the repository.
func (o *options) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(o.root, p)
}

// bench carries what every phase shares.
type bench struct {
	o   *options
	srv *server.Server
	// cluster is the r3 phase's servers (srv is then nil).
	cluster []*server.Server
	url     string
	r       *results
	// failoverDir holds the failover phase's files when it ran.
	failoverDir string
	// replicas of the buckets and streams of the phase (0: one).
	replicas int
}

// profile starts a CPU profile of this process (the server, the job
// manager and, except in the scale phase, the nodes) for one phase.
func (b *bench) profile(phase string) func() {
	if !b.o.profile {
		return func() {}
	}
	path := b.profPath(phase)
	f, err := os.Create(path)
	if err != nil {
		logf("profile: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		logf("profile: %v", err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		logf("profile saved: %s", path)
	}
}

func (b *bench) profPath(name string) string {
	return filepath.Join(b.o.root, "bench", "results", name+".prof")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// repoRoot finds the module root from the working directory, so the
// results land in the repository wherever bench is started from inside it.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run bench from inside the drover repository")
		}
		dir = parent
	}
}

func startServer(dir string) (*server.Server, error) {
	return start(serverOptions("bench", dir))
}

// serverOptions are those of every embedded server: JetStream with its
// file store in dir, loopback.
func serverOptions(name, dir string) *server.Options {
	return &server.Options{
		ServerName: name,
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
	}
}

func start(opts *server.Options) (*server.Server, error) {
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, errors.New("nats-server not ready")
	}
	return s, nil
}

// startCluster starts n embedded servers clustered on loopback, each with
// its store under dir, and waits until JetStream's meta group has a leader
// that knows every server. stop shuts down those started.
func startCluster(dir string, n int) (srvs []*server.Server, stop func(), err error) {
	stop = func() {
		for _, s := range srvs {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	ports := make([]int, n)
	var routes []*url.URL
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, stop, err
		}
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	for i := range n {
		opts := serverOptions(fmt.Sprintf("bench-r%d", i), filepath.Join(dir, fmt.Sprint(i)))
		opts.Cluster = server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: ports[i]}
		opts.Routes = routes
		s, err := start(opts)
		if err != nil {
			return srvs, stop, err
		}
		srvs = append(srvs, s)
	}
	err = poll(30*time.Second, "the JetStream meta leader", func() bool {
		for _, s := range srvs {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n {
				return true
			}
		}
		return false
	})
	return srvs, stop, err
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// phase is one phase of the benchmark: its name (for -only and the
// results' load by phase) and what runs it.
type phase struct {
	name string
	f    func() error
}

// phases are b's phases in the order they run.
func (b *bench) phases() []phase {
	return []phase{
		{"raw", b.raw},
		{"submit", b.submit},
		{"floor", b.floor},
		{"e2e", b.e2e},
		{"r3", b.r3},
		{"schedule", b.schedule},
		{"scale", b.scale},
		{"scale100k", b.scale100k},
		{"active10k", b.active10k},
		{"live10k", b.live10k},
		{"wordcount", b.wordcount},
		{"list", b.list},
		{"bigjob", b.bigjob},
		{"failover", b.failover},
	}
}

// phaseNames are the phases' names in the order they run.
var phaseNames = func() []string {
	var names []string
	for _, p := range (&bench{}).phases() {
		names = append(names, p.name)
	}
	return names
}()

// quotedPhases write files of their own, quoted into the results file: a
// run of only these re-quotes the last results instead of replacing them.
var quotedPhases = map[string]bool{"bigjob": true, "failover": true}

// onlyQuoted reports whether every selected phase is a quoted one.
func (o *options) onlyQuoted() bool {
	for p := range o.only {
		if !quotedPhases[p] {
			return false
		}
	}
	return len(o.only) > 0
}

// quote reads the figures of the benchmarks that write files of their own:
// the e2e failover benchmarks (at path: this run's, or the last full run's)
// and the largest job.
func (r *results) quote(o *options, path func(name string) string) {
	r.readFailover(path("failover.json"))
	r.readMassFailover(path("mass_failover.json"))
	r.readLeaderFailover(path("leader_failover.json"))
	bj := o.bigJobPath()
	if _, err := os.Stat(bj); err != nil {
		bj = filepath.Join(o.root, "bench", "results", "bigjob.json") // the last full run's
	}
	r.readBigJob(bj)
}

// requote re-reads the results file of the last run, quotes the other
// benchmarks' files anew and rewrites it and the table, running nothing:
// for figures measured by those benchmarks since.
// fresh, if not nil, is this run's environment, for a results file that
// does not exist yet.
func requote(o *options, path func(name string) string, fresh *env) error {
	r := &results{}
	b, err := os.ReadFile(o.path(o.out))
	switch {
	case errors.Is(err, os.ErrNotExist) && fresh != nil:
		r.Env = fresh
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, r); err != nil {
			return fmt.Errorf("%s: %w", o.out, err)
		}
	}
	e := r.Env
	if e == nil {
		return fmt.Errorf("%s: no env: not written by a run", o.out)
	}
	for _, p := range phaseNames {
		if _, ok := e.PhaseLoad[p]; ok {
			e.phases = append(e.phases, p)
		}
	}
	r.quote(o, path)
	r.derive()
	return r.save(o, e)
}

// dropStreams deletes every stream a phase left on the shared server: each
// phase deploys under its own prefix, whose buckets and streams reserve
// their byte limits, and all phases' reservations together outgrow the
// server's store (the bigjob phase's buckets were refused, insufficient
// storage, in the first full run with the scale phases).
func dropStreams(url string) error {
	nc, js, err := connectJS(url, "bench-cleanup")
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names := js.StreamNames(ctx)
	var all []string
	for n := range names.Name() {
		all = append(all, n)
	}
	if err := names.Err(); err != nil {
		return err
	}
	for _, n := range all {
		if err := js.DeleteStream(ctx, n); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete stream %s: %w", n, err)
		}
	}
	return nil
}

// connectJS connects to url as name, with a JetStream context.
func connectJS(url, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name(name))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
