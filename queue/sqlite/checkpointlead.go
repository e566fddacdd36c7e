package sqlite

import "os"

// checkpointLockExclusive says that one process at a time holds the
// checkpoint lock here; where there are no file locks, every process
// checkpoints.
const checkpointLockExclusive = fileLocking

// tryLeadCheckpoints tries, without waiting, to take the lock that makes
// this process the queue file's checkpointer: an exclusive lock on
// lockPath (created if missing; lockNoWait is flock or LockFileEx). The
// lock is the kernel's, so it goes with the process when the process
// dies, and another one takes over at its next try. It returns release
// when it got the lock and nil when another process holds it.
//
// Without file locks every process leads: passive checkpoints of several
// processes do not wait for each other (a busy one returns at once), they
// only repeat work.
func tryLeadCheckpoints(lockPath string) (release func(), err error) {
	if !fileLocking {
		return func() {}, nil
	}
	f, err := openLockFile(lockPath)
	if err != nil {
		return nil, err
	}
	held, err := lockNoWait(f)
	if err != nil || !held {
		_ = f.Close()
		return nil, err
	}
	// Closing the file releases the lock. The file stays: removing it
	// could let two processes hold locks on two files of the same name.
	return func() { _ = f.Close() }, nil
}

// openLockFile opens, creating it if needed, a file beside the queue that
// is only ever locked (the checkpoint lock, the write lock). It is opened
// read-only, which the lock calls need no more than, so that a lock file
// created by another user who can read it works too.
func openLockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
}
