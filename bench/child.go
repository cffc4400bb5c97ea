package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/services/jobmanager"
	"github.com/drover-run/drover/services/jobmaster"
	"github.com/drover-run/drover/services/worker"
)

// childArg makes the benchmark binary run one service instead: the scale
// phases start their job-master and worker nodes (and the live10k phase
// its job manager) as separate processes of this same binary, so they run
// the benchmark job types without those being in the stock binaries.
const childArg = "__bench-node"

// runChild runs one node until SIGTERM. Each SIGUSR1 starts, and the next
// stops, a CPU profile written to the next of the -profs paths.
func runChild(args []string) error {
	fs := flag.NewFlagSet(childArg, flag.ContinueOnError)
	role := fs.String("role", "", "jobmaster, worker or jobmanager")
	url := fs.String("nats", "", "NATS URL")
	prefix := fs.String("prefix", "", "namespace")
	node := fs.String("node", "", "node id")
	capacity := fs.Int("capacity", 100000, "node capacity")
	profs := fs.String("profs", "", "comma-separated CPU profile paths, one per SIGUSR1 pair")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go profileOnSignal(*profs)

	cc := common(*url, *prefix, *node)
	log := newLogger()
	nc, err := cc.Connect(*node, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	var r interface{ Run(context.Context) error }
	switch *role {
	case "jobmaster":
		r, err = jobmaster.New(jobmaster.Config{Node: config.Node{Common: cc, Capacity: *capacity}},
			jobmaster.Deps{NC: nc, Log: log, Types: registry()})
	case "worker":
		r, err = worker.New(worker.Config{Node: config.Node{Common: cc, Capacity: *capacity}},
			worker.Deps{NC: nc, Log: log, Types: registry()})
	case "jobmanager":
		r, err = jobmanager.New(jobManagerConfig(cc), jobmanager.Deps{NC: nc, Log: log, Types: registry()})
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

func profileOnSignal(paths string) {
	if paths == "" {
		return
	}
	usr := make(chan os.Signal, 1)
	signal.Notify(usr, syscall.SIGUSR1)
	var f *os.File
	for _, p := range strings.Split(paths, ",") {
		<-usr
		var err error
		if f, err = os.Create(p); err != nil {
			fmt.Fprintln(os.Stderr, "bench child: profile:", err)
			continue
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench child: profile:", err)
		}
		<-usr
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// child is one node process.
type child struct {
	name string
	cmd  *exec.Cmd
	// done is closed once the process has ended: stop and kill may be
	// called again after it (a set of nodes stopped, then stopped again by
	// a deferred cleanup when its replacement failed to start).
	done chan struct{}
}

func startChild(role, url, prefix, node string, profs []string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, childArg, "-role", role, "-nats", url, "-prefix", prefix, "-node", node,
		"-profs", strings.Join(profs, ","))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return newChild(node, cmd)
}

// newChild starts cmd, a process that dies with this one.
func newChild(name string, cmd *exec.Cmd) (*child, error) {
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) signal(s os.Signal) { _ = c.cmd.Process.Signal(s) }

// kill ends the process at once: for phases whose deployment is thrown
// away, where a graceful stop of thousands of workers would only add time.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// stop ends the node gracefully, by force after a bound.
func (c *child) stop() {
	c.signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// procStat is what /proc says about one process.
type procStat struct {
	ticks uint64 // utime + stime, in clock ticks
	rss   uint64 // bytes
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func readProc(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("bad /proc stat")
	}
	// Fields after "(comm)" start at field 3 (state).
	f := strings.Fields(s[i+1:])
	if len(f) < 22 {
		return procStat{}, errors.New("short /proc stat")
	}
	field := func(n int) uint64 { v, _ := strconv.ParseUint(f[n-3], 10, 64); return v }
	return procStat{ticks: field(14) + field(15), rss: field(24) * uint64(os.Getpagesize())}, nil
}
