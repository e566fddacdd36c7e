package main

import "syscall"

// procAttr makes the kernel kill a service when e2ebench dies, so that an
// interrupted benchmark leaves no process behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
