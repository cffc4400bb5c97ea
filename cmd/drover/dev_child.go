package main

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"github.com/drover-run/drover/pkg/topics"
)

// child is one service process of `drover dev`.
type child struct {
	name string
	path string
	role topics.Role // its NATS identity on the embedded server
	args []string
	env  []string // added to the launcher's environment, overriding it
	http string   // its HTTP listener, for the banner
	note string   // more lines for the banner (the job manager's console and token)

	cmd    *exec.Cmd
	out    *lineWriter
	errOut *lineWriter
	done   chan struct{} // closed once it has exited
	err    error         // its exit status, once done is closed
}

// exit is a child's end, reported to the launcher's loop.
type exit struct {
	c   *child
	err error
}

// spawner starts processes from one goroutine locked to its OS thread.
// Linux sends Pdeathsig when the *thread* that forked a child exits, not
// the process; Go may retire threads, so forking from an arbitrary
// goroutine could kill children while the launcher still lives.
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with this goroutine, after stop,
		// when no child is left to signal.
		for r := range s.reqs {
			r.errc <- r.cmd.Start()
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, errc: errc}
	return <-errc
}

// stop ends the spawner; call it once every child has exited.
func (s *spawner) stop() { close(s.reqs) }

// start launches the child with its output on mux; its end is sent on exits.
func (c *child) start(sp *spawner, mux *logMux, environ []string, deathSig syscall.Signal, exits chan<- exit) error {
	c.out = &lineWriter{mux: mux, name: c.name}
	c.errOut = &lineWriter{mux: mux, name: c.name}
	cmd := exec.Command(c.path, c.args...)
	cmd.Env = append(append([]string{}, environ...), c.env...)
	cmd.Stdout, cmd.Stderr = c.out, c.errOut
	cmd.SysProcAttr = childProcAttr(deathSig)
	// A grandchild holding the output pipes must not stall Wait.
	cmd.WaitDelay = 2 * time.Second
	if err := sp.start(cmd); err != nil {
		return fmt.Errorf("start %s (%s): %w", c.name, c.path, err)
	}
	c.cmd = cmd
	c.done = make(chan struct{})
	go func() {
		err := cmd.Wait()
		c.out.flush()
		c.errOut.flush()
		c.err = err
		close(c.done)
		exits <- exit{c: c, err: err}
	}()
	return nil
}

func (c *child) running() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// describeExit says how a process ended, for people.
func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
	}
	return err.Error()
}
