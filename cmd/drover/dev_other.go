//go:build !linux

package main

import (
	"os"
	"syscall"
)

// childProcAttr sets nothing: only Linux can tie a child's life to its
// parent's (Pdeathsig); elsewhere a killed launcher may leave children.
func childProcAttr(syscall.Signal) *syscall.SysProcAttr { return nil }

// signalChild signals the child process.
func (c *child) signal(sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return c.cmd.Process.Kill()
	}
	return c.cmd.Process.Signal(os.Signal(sig))
}
