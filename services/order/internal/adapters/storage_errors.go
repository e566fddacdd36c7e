package adapters

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/mattn/go-sqlite3"

	"github.com/orderflow/orderflow/services/order/internal/app"
)

// storageErr returns err marked with app.ErrStorageUnavailable (wrapped
// with %w, err's own chain kept) when it says the database cannot be used
// now (storageUnavailable); any other error, and nil,
// unchanged. It is the one place the order service classifies storage
// failures: every Store method that serves a request or a message returns
// its errors through it (not the operator's RebuildProjections, nor the
// poison fault's EmitPoison).
func storageErr(err error) error {
	if err == nil || errors.Is(err, app.ErrStorageUnavailable) || !storageUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", app.ErrStorageUnavailable, err)
}

// storageUnavailable says whether err says the database cannot be used
// now, whatever the statement: the disk is full, an I/O failed, the file
// is locked by another connection past the busy timeout, cannot be opened
// (often: no file descriptor left) or has become read-only (a file system
// remounted read-only after errors) — as an SQLite result code or, where
// it reaches us as one, a system error. SQLITE_LOCKED is not one: it is a
// conflict within one connection, a bug to see as such.
func storageUnavailable(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrFull, sqlite3.ErrIoErr, sqlite3.ErrBusy, sqlite3.ErrCantOpen, sqlite3.ErrReadonly:
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
