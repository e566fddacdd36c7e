//go:build unix && !linux

package main

import "syscall"

// sysProcAttr starts a process in a process group of its own, so that a
// terminal's Ctrl-C reaches devrun alone and devrun stops its processes
// itself. (Here, unlike on Linux, nothing stops the processes of a devrun
// killed with SIGKILL.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// stopWithParent: the kernel cannot signal devrun when its parent ends
// here; stop devrun (Ctrl-C, SIGTERM) to stop its processes.
func stopWithParent() {}
