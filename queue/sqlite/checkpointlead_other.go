//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows)

package sqlite

// checkpointLockExclusive says that every process checkpoints here.
const checkpointLockExclusive = false

// tryLeadCheckpoints makes every process a checkpointer where flock is
// not available: passive checkpoints of several processes do not wait for
// each other (a busy one returns at once), they only repeat work.
func tryLeadCheckpoints(string) (release func(), err error) {
	return func() {}, nil
}
