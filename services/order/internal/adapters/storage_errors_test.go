package adapters

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/mattn/go-sqlite3"

	"github.com/orderflow/orderflow/services/order/internal/app"
)

// storageErr marks the failures of a database that cannot be used now,
// however deep in the chain, and nothing else.
func TestStorageErrClassifies(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool // matches app.ErrStorageUnavailable
	}{
		{"disk full", fmt.Errorf("save order o-1: %w", sqlite3.Error{Code: sqlite3.ErrFull}), true},
		{"I/O error", fmt.Errorf("commit: %w", sqlite3.Error{Code: sqlite3.ErrIoErr, ExtendedCode: sqlite3.ErrIoErrFsync}), true},
		{"busy", sqlite3.Error{Code: sqlite3.ErrBusy}, true},
		{"locked", sqlite3.Error{Code: sqlite3.ErrLocked}, true},
		{"cannot open", fmt.Errorf("get connection: %w", sqlite3.Error{Code: sqlite3.ErrCantOpen, SystemErrno: syscall.EMFILE}), true},
		{"read-only file system", sqlite3.Error{Code: sqlite3.ErrReadonly}, true},
		{"too many open files", fmt.Errorf("open: %w", &os.PathError{Op: "open", Path: "/data/order.db", Err: syscall.EMFILE}), true},
		{"no space", fmt.Errorf("write: %w", syscall.ENOSPC), true},
		{"constraint", sqlite3.Error{Code: sqlite3.ErrConstraint}, false},
		{"corrupt", sqlite3.Error{Code: sqlite3.ErrCorrupt}, false},
		{"not found", fmt.Errorf("%w: o-1", app.ErrOrderNotFound), false},
		{"no rows", sql.ErrNoRows, false},
		{"other", errors.New("boom"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := storageErr(tc.err)
			if is := errors.Is(got, app.ErrStorageUnavailable); is != tc.want {
				t.Errorf("errors.Is(storageErr(%v), ErrStorageUnavailable): got %v, want %v", tc.err, is, tc.want)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("storageErr(%v) = %v: got the original error lost, want it in the chain", tc.err, got)
			}
			if again := storageErr(got); again != got {
				t.Errorf("storageErr twice: got %v, want %v unchanged", again, got)
			}
		})
	}
	if got := storageErr(nil); got != nil {
		t.Errorf("storageErr(nil): got %v, want nil", got)
	}
}
