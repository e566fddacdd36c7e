package sqlitefile

import (
	"errors"
	"syscall"

	"github.com/mattn/go-sqlite3"
)

// StorageFailure reports whether err says that the database file cannot
// be used now, whatever the statement, as opposed to one statement's own
// failure (a constraint, a lost lease, a handler's error): SQLite's disk
// full, I/O error, busy (the file stayed locked by another connection past
// the busy timeout), corruption, not a database, cannot open (often: no
// file descriptor left) or read-only; or the system's no space, quota, I/O
// error, too many open files (per process or system-wide) or read-only
// file system, where they reach the caller as such. SQLITE_LOCKED is not
// one: it is a conflict within one connection, a bug to see as such.
//
// It is the one classification of storage failures, for every use:
//   - a message handler's error (pkg/commandhandler): the message is not
//     at fault, so it is retried for as long as the failure lasts and
//     never dead-lettered for it (queue.Unavailable);
//   - an order API request's error (the order service's adapters): a 503
//     "storage unavailable" with Retry-After, not a 500;
//   - a store's write health (writehealth.Record.FailedIf, the queue's
//     SQLite writer and the inbox): readiness fails until a commit
//     succeeds.
//
// Each failure is one that the caller cannot fix and that ends, or needs
// an operator, without the request or the message changing: a lock held
// past the busy timeout ends when its holder commits, as a full disk ends
// when space is freed; a corrupt file ends when it is restored. For none
// of them is a dead letter or a 500 the right answer.
func StorageFailure(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrFull, sqlite3.ErrIoErr, sqlite3.ErrBusy, sqlite3.ErrCorrupt, sqlite3.ErrNotADB,
			sqlite3.ErrCantOpen, sqlite3.ErrReadonly:
			return true
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EMFILE, syscall.ENFILE, syscall.EROFS:
			return true
		}
	}
	return false
}
