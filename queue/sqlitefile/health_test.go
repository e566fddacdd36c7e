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
)

// An old failure with no write since does not hold a process unready; a
// commit after a failure ends it at once.
func TestWriteHealthWindow(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	boom := errors.New("database or disk is full")
	tests := []struct {
		name    string
		record  func(h *sqlitefile.WriteHealth)
		at      time.Time
		wantErr bool
	}{
		{"nothing recorded", func(*sqlitefile.WriteHealth) {}, now, false},
		{"commit only", func(h *sqlitefile.WriteHealth) { h.Succeeded(now) }, now, false},
		{"failure just now", func(h *sqlitefile.WriteHealth) { h.Succeeded(now.Add(-time.Minute)); h.Failed(now, boom) }, now.Add(time.Second), true},
		{"failure, then a commit", func(h *sqlitefile.WriteHealth) { h.Failed(now, boom); h.Succeeded(now.Add(time.Millisecond)) }, now.Add(time.Second), false},
		{"failure past the window", func(h *sqlitefile.WriteHealth) { h.Failed(now, boom) }, now.Add(sqlitefile.WriteFailureWindow + time.Second), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h sqlitefile.WriteHealth
			tc.record(&h)
			got := h.Err(tc.at)
			if (got != nil) != tc.wantErr {
				t.Fatalf("got %v, want an error: %v", got, tc.wantErr)
			}
			if got != nil && !errors.Is(got, boom) {
				t.Errorf("got %v, want it to wrap the last failure", got)
			}
		})
	}
}

func TestStorageFailure(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"disk full", fmt.Errorf("commit: %w", sqlite3.Error{Code: sqlite3.ErrFull}), true},
		{"I/O error", sqlite3.Error{Code: sqlite3.ErrIoErr}, true},
		{"corrupt", sqlite3.Error{Code: sqlite3.ErrCorrupt}, true},
		{"read-only", sqlite3.Error{Code: sqlite3.ErrReadonly}, true},
		{"no space", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, true},
		{"read-only file system", &fs.PathError{Op: "open", Path: "x", Err: syscall.EROFS}, true},
		{"constraint", sqlite3.Error{Code: sqlite3.ErrConstraint}, false},
		{"busy", sqlite3.Error{Code: sqlite3.ErrBusy}, false},
		{"other", errors.New("lease lost"), false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		if got := sqlitefile.StorageFailure(tc.err); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// FailedIfStorage records only failures that say the file cannot take
// writes.
func TestFailedIfStorageRecordsOnlyStorageFailures(t *testing.T) {
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
		var h sqlitefile.WriteHealth
		h.FailedIfStorage(now, tc.err)
		if got := h.Err(now) != nil; got != tc.failed {
			t.Errorf("%s: failing after FailedIfStorage: got %v, want %v", tc.name, got, tc.failed)
		}
	}
}
