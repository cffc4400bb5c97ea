package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a child node process die with the benchmark, so an
// interrupted run leaves nothing behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
