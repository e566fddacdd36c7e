package sqlitefile

import (
	"errors"
	"syscall"

	"github.com/mattn/go-sqlite3"
)

// StorageFailure reports whether err says that the file cannot take
// writes, as opposed to one statement's own failure (a constraint, a lost
// lease): SQLite's disk full, I/O error, corruption, not a database,
// cannot open or read-only, or the system's no space, quota, I/O error or
// read-only file system where they reach the caller as such.
func StorageFailure(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrFull, sqlite3.ErrIoErr, sqlite3.ErrCorrupt, sqlite3.ErrNotADB, sqlite3.ErrCantOpen, sqlite3.ErrReadonly:
			return true
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS:
			return true
		}
	}
	return false
}
