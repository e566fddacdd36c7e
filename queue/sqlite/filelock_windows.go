//go:build windows

package sqlite

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// fileLocking says that this platform has exclusive file locks that go
// with the process (LockFileEx here).
const fileLocking = true

// lockNoWait takes an exclusive LockFileEx on f that fails at once when
// another process holds it, reporting false then.
func lockNoWait(f *os.File) (held bool, err error) {
	var whole windows.Overlapped
	err = windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &whole)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return false, nil
	}
	return err == nil, err
}

// lockWait takes an exclusive LockFileEx on f, waiting for as long as
// another process holds it.
func lockWait(f *os.File) error {
	var whole windows.Overlapped
	return windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, &whole)
}

// unlockFile releases the lock on f.
func unlockFile(f *os.File) error {
	var whole windows.Overlapped
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &whole)
}
