//go:build cgo

package cmalloc

/*
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static int orderflow_set_trim_threshold(int bytes) {
#ifdef __GLIBC__
	return mallopt(M_TRIM_THRESHOLD, bytes);
#else
	return 0;
#endif
}

static int orderflow_is_glibc(void) {
#ifdef __GLIBC__
	return 1;
#else
	return 0;
#endif
}
*/
import "C"

import "math"

// setTrimThreshold reports whether glibc took the threshold.
func setTrimThreshold(bytes int) bool {
	if bytes < 0 || bytes > math.MaxInt32 {
		return false
	}
	return C.orderflow_set_trim_threshold(C.int(bytes)) == 1
}

// isGlibc reports whether the C library is glibc.
func isGlibc() bool { return C.orderflow_is_glibc() == 1 }
