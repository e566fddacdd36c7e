//go:build !linux

package main

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }

// resetPeakRSS does nothing here: the peak RSS is read on Linux only.
func resetPeakRSS() error { return nil }
