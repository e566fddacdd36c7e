// Package cmalloc tunes the C allocator that SQLite (through
// mattn/go-sqlite3) allocates from, for the services that keep SQLite busy.
//
// SQLite allocates and frees page caches per statement: every temporary
// b-tree (an UPDATE … WHERE … IN (SELECT …), a RETURNING clause, a sort
// without an index) gets a page cache of its own, about 90 KiB allocated in
// one piece. glibc's malloc gives freed memory back to the kernel once more
// than its trim threshold (128 KiB at first) lies free at the top of a heap,
// so the next statement takes it back page by page, one page fault each. On
// virtual machines where a page fault is dear, that churn cost this
// project's services a tenth to a fifth of their throughput
// (docs/benchmarks.md). KeepFreedMemory raises the threshold, so freed
// memory stays with the process for reuse.
//
// The cost is memory: each malloc arena (one per thread that calls into C,
// at most eight per core) keeps the memory of its peak instead of shrinking
// back after a spike. Measured: peak RSS of the four services +15 MiB, idle
// unchanged.
package cmalloc

import "strings"

// DefaultTrimThreshold is the trim threshold the services use: how much
// free memory at the top of a C heap may stay with the process before glibc
// returns it to the kernel.
const DefaultTrimThreshold = 64 << 20

// mmapThreshold is the size from which glibc serves an allocation with a
// mapping of its own, returned to the kernel at free. Setting the trim
// threshold freezes glibc's adaptive mmap threshold at its start value
// (128 KiB), so a statement binding a 200 KiB payload would map and fault
// it in on every call; 32 MiB is where glibc's own adaptation stops on
// 64-bit systems (the largest value it accepts).
const mmapThreshold = 32 << 20

// Outcome says what KeepFreedMemory did.
type Outcome int

const (
	// Applied: the thresholds are set.
	Applied Outcome = iota + 1
	// LeftToEnvironment: glibc's own environment variables
	// (MALLOC_TRIM_THRESHOLD_, or GLIBC_TUNABLES naming
	// glibc.malloc.trim_threshold) choose; nothing changed.
	LeftToEnvironment
	// Unsupported: the C library is not glibc, or the binary was built
	// without cgo; nothing changed.
	Unsupported
	// Rejected: glibc refused the value (negative, or beyond what it
	// accepts); nothing changed.
	Rejected
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case LeftToEnvironment:
		return "left to the environment"
	case Unsupported:
		return "unsupported"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// KeepFreedMemory sets glibc's trim threshold (M_TRIM_THRESHOLD) to bytes
// and its mmap threshold (M_MMAP_THRESHOLD) to 32 MiB, or as high as glibc
// accepts, for the whole process, unless the environment, read through
// lookup (os.LookupEnv), already chooses the trim threshold. Call it once,
// early in main.
//
// Either setting also stops glibc from adapting its thresholds at run
// time, which it otherwise does as freed mappings show it the sizes in use.
func KeepFreedMemory(lookup func(string) (string, bool), bytes int) Outcome {
	if v, ok := lookup("MALLOC_TRIM_THRESHOLD_"); ok && v != "" {
		return LeftToEnvironment
	}
	if v, ok := lookup("GLIBC_TUNABLES"); ok && containsTrimThreshold(v) {
		return LeftToEnvironment
	}
	if !isGlibc() {
		return Unsupported
	}
	if bytes < 0 || !setTrimThreshold(bytes) {
		return Rejected
	}
	setMmapThreshold(mmapThreshold)
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
