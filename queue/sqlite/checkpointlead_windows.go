//go:build windows

package sqlite

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// checkpointLockExclusive says that one process at a time holds the
// checkpoint lock here.
const checkpointLockExclusive = true

// tryLeadCheckpoints is the flock version's twin on Windows: an exclusive
// LockFileEx on lockPath that fails at once when another process holds it,
// and goes with the process.
func tryLeadCheckpoints(lockPath string) (release func(), err error) {
	f, err := os.OpenFile(lockPath, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	var whole windows.Overlapped
	err = windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &whole)
	if err != nil {
		_ = f.Close()
		if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
			return nil, nil
		}
		return nil, err
	}
	return func() { _ = f.Close() }, nil
}
