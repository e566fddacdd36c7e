package main

import (
	"os"
	"syscall"
)

// procAttr makes the kernel kill a service when e2ebench dies, so that an
// interrupted benchmark leaves no process behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// resetPeakRSS starts this process's peak RSS (VmHWM) again from its
// current RSS, so that an in-process variant's peak is its own, not that
// of an earlier variant run in this process.
func resetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
