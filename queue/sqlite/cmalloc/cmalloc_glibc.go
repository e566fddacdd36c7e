//go:build cgo

package cmalloc

/*
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static int orderflow_is_glibc(void) {
#ifdef __GLIBC__
	return 1;
#else
	return 0;
#endif
}

static int orderflow_mallopt(int param, int value) {
#ifdef __GLIBC__
	switch (param) {
	case 0: return mallopt(M_TRIM_THRESHOLD, value);
	case 1: return mallopt(M_MMAP_THRESHOLD, value);
	}
#endif
	return 0;
}
*/
import "C"

import "math"

// isGlibc reports whether the C library is glibc.
func isGlibc() bool { return C.orderflow_is_glibc() == 1 }

// setTrimThreshold reports whether glibc took the threshold.
func setTrimThreshold(bytes int) bool {
	return bytes <= math.MaxInt32 && C.orderflow_mallopt(0, C.int(bytes)) == 1
}

// setMmapThreshold sets the mmap threshold to bytes or, where glibc refuses
// that much (32-bit systems), to the largest power of two it takes.
func setMmapThreshold(bytes int) bool {
	for ; bytes >= 128<<10; bytes /= 2 {
		if C.orderflow_mallopt(1, C.int(bytes)) == 1 {
			return true
		}
	}
	return false
}
