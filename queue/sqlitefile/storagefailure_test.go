package sqlitefile_test

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/orderflow/orderflow/queue/sqlitefile"
	"github.com/orderflow/orderflow/queue/writehealth"
)

func TestStorageFailure(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"disk full", fmt.Errorf("commit: %w", sqlite3.Error{Code: sqlite3.ErrFull}), true},
		{"I/O error", sqlite3.Error{Code: sqlite3.ErrIoErr}, true},
		{"corrupt", sqlite3.Error{Code: sqlite3.ErrCorrupt}, true},
		{"not a database", sqlite3.Error{Code: sqlite3.ErrNotADB}, true},
		{"read-only", sqlite3.Error{Code: sqlite3.ErrReadonly}, true},
		{"busy past the busy timeout", fmt.Errorf("begin: %w", sqlite3.Error{Code: sqlite3.ErrBusy}), true},
		{"cannot open", sqlite3.Error{Code: sqlite3.ErrCantOpen, SystemErrno: syscall.EMFILE}, true},
		{"no space", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, true},
		{"read-only file system", &fs.PathError{Op: "open", Path: "x", Err: syscall.EROFS}, true},
		{"too many open files", &fs.PathError{Op: "open", Path: "x", Err: syscall.EMFILE}, true},
		{"too many open files in the system", &fs.PathError{Op: "open", Path: "x", Err: syscall.ENFILE}, true},
		{"constraint", sqlite3.Error{Code: sqlite3.ErrConstraint}, false},
		{"locked within the connection", sqlite3.Error{Code: sqlite3.ErrLocked}, false},
		{"other", errors.New("lease lost"), false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		if got := sqlitefile.StorageFailure(tc.err); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A write health record fed StorageFailure records only failures that say
// the file cannot take writes.
func TestOnlyStorageFailuresMakeWritesUnhealthy(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name   string
		err    error
		failed bool
	}{
		{"nil", nil, false},
		{"a constraint", sqlite3.Error{Code: sqlite3.ErrConstraint}, false},
		{"a handler's own error", errors.New("payment declined"), false},
		{"disk full", fmt.Errorf("commit: %w", sqlite3.Error{Code: sqlite3.ErrFull}), true},
		{"read-only file system", fmt.Errorf("write: %w", syscall.EROFS), true},
	} {
		var h writehealth.Record
		h.FailedIf(now, tc.err, sqlitefile.StorageFailure)
		if got := h.Err(now) != nil; got != tc.failed {
			t.Errorf("%s: failing after FailedIf(StorageFailure): got %v, want %v", tc.name, got, tc.failed)
		}
	}
}
