// Package cmalloc tunes the C allocator that SQLite (through
// mattn/go-sqlite3) allocates from, for the services that keep SQLite busy.
//
// SQLite allocates and frees its page caches per statement: every temporary
// b-tree (an UPDATE … WHERE … IN (SELECT …), a RETURNING clause, a sort
// without an index) gets a page cache of its own, about 90 KiB allocated in
// one piece. glibc's malloc gives the freed memory back to the kernel as
// soon as more than 128 KiB lies free at the top of a heap, so the next
// statement takes it back page by page, one page fault each. On virtual
// machines where a page fault is dear, that churn cost this project's
// services about a fifth of their CPU (docs/benchmarks.md). KeepFreedMemory
// raises the threshold, so freed memory stays with the process for reuse.
//
// The cost is memory: a process keeps up to its peak C heap instead of
// shrinking back after a spike (measured: peak RSS of the four services
// +10 %, idle RSS unchanged).
package cmalloc

import "strings"

// DefaultTrimThreshold is the threshold the services use: how much free
// memory at the top of a C heap may stay with the process before glibc
// returns it to the kernel (glibc's own default is 128 KiB).
const DefaultTrimThreshold = 64 << 20

// Outcome says what KeepFreedMemory did.
type Outcome int

const (
	// Applied: the threshold is set.
	Applied Outcome = iota + 1
	// LeftToEnvironment: glibc's own environment variables
	// (MALLOC_TRIM_THRESHOLD_, or GLIBC_TUNABLES naming
	// glibc.malloc.trim_threshold) choose the threshold; nothing changed.
	LeftToEnvironment
	// Unsupported: the C library is not glibc, or the binary was built
	// without cgo (then there is no SQLite either); nothing changed.
	Unsupported
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case LeftToEnvironment:
		return "left to the environment"
	case Unsupported:
		return "unsupported"
	}
	return "unknown"
}

// KeepFreedMemory sets glibc's trim threshold (M_TRIM_THRESHOLD) to bytes,
// for the whole process, unless the environment, read through lookup
// (os.LookupEnv), already chooses it. Call it once, early in main.
//
// Setting the threshold also stops glibc from adjusting its mmap threshold
// at run time; allocations of 128 KiB and more are still served by mmap
// and returned at once.
func KeepFreedMemory(lookup func(string) (string, bool), bytes int) Outcome {
	if v, ok := lookup("MALLOC_TRIM_THRESHOLD_"); ok && v != "" {
		return LeftToEnvironment
	}
	if v, ok := lookup("GLIBC_TUNABLES"); ok && containsTrimThreshold(v) {
		return LeftToEnvironment
	}
	if !setTrimThreshold(bytes) {
		return Unsupported
	}
	return Applied
}

func containsTrimThreshold(tunables string) bool {
	for _, item := range strings.Split(tunables, ":") {
		if strings.HasPrefix(item, "glibc.malloc.trim_threshold=") {
			return true
		}
	}
	return false
}
