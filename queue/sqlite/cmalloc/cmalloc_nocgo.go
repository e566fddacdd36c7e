//go:build !cgo

package cmalloc

func isGlibc() bool { return false }

func setTrimThreshold(int) bool { return false }

func setMmapThreshold(int) bool { return false }
