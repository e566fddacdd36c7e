//go:build linux

package main

import "syscall"

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
