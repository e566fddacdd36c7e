//go:build unix

package main

import "syscall"

// signalProcess sends sig to p's process group, which sysProcAttr made p's
// own (its id is p's pid): p and whatever p started without a group of its
// own, such as the service that `go run` or a shell script runs. It returns
// os.ErrProcessDone once p has been waited for.
func signalProcess(p *process, sig syscall.Signal) error {
	// Signal 0 asks whether p is still there (a zombie too) without a race
	// with cmd.Wait, which reaps it: after that its pid, the group's id,
	// may become another's. Only a reap and a reuse between this check
	// and the kill could misdirect the kill.
	if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		return err
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != syscall.ESRCH {
		return err
	}
	// No such group although p is there: p moved itself into another
	// group (setpgid; after setsid its new group would have its pid as
	// id, and the kill above reach it). Signal p itself, so that it still
	// gets SIGTERM and its grace period.
	return p.cmd.Process.Signal(sig)
}
