package adapters

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/mattn/go-sqlite3"

	"github.com/orderflow/orderflow/services/order/internal/app"
)

// unavailableCodes are the SQLite result codes that say the database
// cannot be used now, whatever the statement: the disk is full, an I/O
// failed, the file is locked past the busy timeout, cannot be opened
// (often: no file descriptor left) or has become read-only (a file
// system remounted read-only after errors).
var unavailableCodes = []sqlite3.ErrNo{
	sqlite3.ErrFull, sqlite3.ErrIoErr, sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrCantOpen, sqlite3.ErrReadonly,
}

// unavailableErrnos are the same failures when they reach us as system
// errors rather than SQLite result codes.
var unavailableErrnos = []syscall.Errno{
	syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EMFILE, syscall.ENFILE, syscall.EROFS,
}

// storageErr returns err marked with app.ErrStorageUnavailable (wrapped
// with %w, err's own chain kept) when it says the database cannot be used
// now (unavailableCodes, unavailableErrnos); any other error, and nil,
// unchanged. It is the one place the order service classifies storage
// failures: every Store method returns its errors through it.
func storageErr(err error) error {
	if err == nil || errors.Is(err, app.ErrStorageUnavailable) || !storageUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", app.ErrStorageUnavailable, err)
}

func storageUnavailable(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		for _, c := range unavailableCodes {
			if se.Code == c {
				return true
			}
		}
	}
	for _, e := range unavailableErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
