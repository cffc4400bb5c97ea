package main

import "syscall"

// childProcAttr puts a child in its own process group, so a Ctrl-C on the
// terminal reaches only the launcher, which then stops the children in
// order; and has the kernel signal the child if the launcher dies without
// stopping it (kill -9), so no orphan keeps running.
func childProcAttr(deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}
}

// signalChild signals the child's whole process group.
func (c *child) signal(sig syscall.Signal) error {
	return syscall.Kill(-c.cmd.Process.Pid, sig)
}
