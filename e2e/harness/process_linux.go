package harness

import "syscall"

// procAttr makes the kernel kill a service when the test process dies, so
// that a test binary that panics or times out leaves no process behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
