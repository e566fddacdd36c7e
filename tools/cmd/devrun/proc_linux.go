//go:build linux

package main

import (
	"os"
	"syscall"
)

// sysProcAttr starts a process in a process group of its own, so that a
// terminal's Ctrl-C reaches devrun alone and devrun stops its processes
// itself; and has the kernel send it SIGTERM if devrun dies first (SIGKILL,
// a crash), so that no service outlives devrun. (Pdeathsig follows the
// thread that started the process; the Go runtime ends no thread but one
// locked with runtime.LockOSThread, which devrun does not use. It reaches
// the process, not what that started: a `go run`'s service is left.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// stopWithParent has the kernel send devrun SIGTERM when the process that
// started it ends (Task forced out by repeated signals, a shell that was
// killed), so that devrun stops its processes as on Ctrl-C instead of
// leaving them running with no one to stop them. A parent gone before the
// request took effect gets the same answer at once. Call it once the
// SIGTERM handler is in place.
func stopWithParent() {
	parent := os.Getppid()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		return
	}
	if os.Getppid() != parent {
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
}
