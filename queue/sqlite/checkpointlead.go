package sqlite

import (
	"errors"
	"os"

	"github.com/orderflow/orderflow/queue/sqlitefile"
)

// checkpointLockExclusive says that one process at a time holds the
// checkpoint lock here; where there are no file locks, every process
// checkpoints.
const checkpointLockExclusive = fileLocking

// tryLeadCheckpoints tries, without waiting, to take the lock that makes
// this process the queue file's checkpointer: an exclusive lock on
// lockPath (created if missing, with the permissions of the queue file at
// queuePath: openLockFile; lockNoWait is flock or LockFileEx). The
// lock is the kernel's, so it goes with the process when the process
// dies, and another one takes over at its next try. It returns release
// when it got the lock and nil when another process holds it.
//
// Without file locks every process leads: passive checkpoints of several
// processes do not wait for each other (a busy one returns at once), they
// only repeat work.
func tryLeadCheckpoints(lockPath, queuePath string) (release func(), err error) {
	if !fileLocking {
		return func() {}, nil
	}
	f, err := openLockFile(lockPath, queuePath)
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

// openLockFile opens, creating it if needed, a file beside the queue file
// (queuePath) that is only ever locked (the checkpoint lock, the write
// lock). It is opened read-only, which the lock calls need no more than,
// so that a lock file created by another user who can read it works too.
//
// A new lock file gets the queue file's permissions (as SQLite gives its
// -wal and -shm files): anyone who may read the lock file can hold its
// lock and so stall every writer, and who may read the queue may read
// the messages anyway. A queue shared by a group (0660) shares its locks
// with that group; a private one (sqlitefile.NewFileMode) keeps them
// private. Without a queue file to copy, NewFileMode.
func openLockFile(path, queuePath string) (*os.File, error) {
	mode := sqlitefile.NewFileMode
	if st, err := os.Stat(queuePath); err == nil {
		mode = st.Mode().Perm() &^ 0o111
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return os.OpenFile(path, os.O_RDONLY, 0)
	}
	if err != nil {
		return nil, err
	}
	// The umask may have taken bits off mode; as SQLite does for its
	// -wal and -shm files, set it whole.
	if err := f.Chmod(mode); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}
