//go:build !unix

package main

import "syscall"

// sysProcAttr: no process groups to set up here.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalProcess sends sig to p itself; without SIGTERM (Windows) it fails
// for anything but SIGKILL, and stop kills p at once.
func signalProcess(p *process, sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return p.cmd.Process.Kill()
	}
	return p.cmd.Process.Signal(sig)
}

// stopWithParent: the kernel cannot signal devrun when its parent ends
// here; stop devrun (Ctrl-C, SIGTERM) to stop its processes.
func stopWithParent() {}
