package sqlitefile

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"
)

// WriteFailureWindow is how long a failed write keeps WriteHealth.Err
// failing when nothing has been committed since: a process with work
// writes again within a second or so, so an outage keeps it fresh, and an
// idle process is not held unready by one old failure.
const WriteFailureWindow = 10 * time.Second

// WriteHealth records the outcome of a database's write transactions, so
// that a readiness check can tell, without writing, whether writes
// currently fail: a full disk or a failing one leaves pings and reads
// answering while every commit fails. The zero value is ready to use; it is
// safe for concurrent use, and Succeeded, the writers' hot path, is one
// atomic store.
type WriteHealth struct {
	lastOK atomic.Int64 // Unix nanoseconds of the last commit

	mu        sync.Mutex
	firstFail time.Time // the first failure after the last commit
	lastFail  time.Time
	lastErr   error
}

// Succeeded records a commit at t.
func (h *WriteHealth) Succeeded(t time.Time) { h.lastOK.Store(t.UnixNano()) }

// Failed records at t a write that failed with err.
func (h *WriteHealth) Failed(t time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lastFail.After(time.Unix(0, h.lastOK.Load())) {
		h.firstFail = t
	}
	h.lastFail, h.lastErr = t, err
}

// FailedIfStorage records at t a write that failed with err if err says
// the file cannot take writes (StorageFailure); a statement's own failure
// (a constraint, a lost lease, a handler's error) and nil are not
// recorded.
func (h *WriteHealth) FailedIfStorage(t time.Time, err error) {
	if err != nil && StorageFailure(err) {
		h.Failed(t, err)
	}
}

// Err is nil unless the last failure is at most WriteFailureWindow before
// now and no commit followed it; then it says since when writes fail and
// wraps the last error.
func (h *WriteHealth) Err(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastErr == nil || !h.lastFail.After(time.Unix(0, h.lastOK.Load())) || now.Sub(h.lastFail) > WriteFailureWindow {
		return nil
	}
	return fmt.Errorf("writes failing since %s (last %s ago): %w",
		h.firstFail.UTC().Format(time.RFC3339), now.Sub(h.lastFail).Round(time.Millisecond), h.lastErr)
}

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
