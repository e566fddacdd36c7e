//go:build !cgo

package cmalloc

func setTrimThreshold(int) bool { return false }

func isGlibc() bool { return false }
