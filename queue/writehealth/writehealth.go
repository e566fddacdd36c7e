// Package writehealth records whether a store's writes currently fail, so
// that a readiness check can tell without writing: a full disk, a failing
// one or a database server that refuses writes leaves pings and reads
// answering while every commit fails.
package writehealth

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// FailureWindow is how long a failed write keeps Record.Err failing when
// nothing has been committed since: a process with work writes again
// within a second or so, so an outage keeps it fresh, and an idle process
// is not held unready by one old failure.
const FailureWindow = 10 * time.Second

// Record records the outcome of a store's writes. The zero value is ready
// to use; it is safe for concurrent use, and Succeeded, the writers' hot
// path, is one atomic store.
type Record struct {
	lastOK atomic.Int64 // Unix nanoseconds of the last commit

	mu        sync.Mutex
	firstFail time.Time // the first failure after the last commit
	lastFail  time.Time
	lastErr   error
}

// Succeeded records a commit at t.
func (h *Record) Succeeded(t time.Time) { h.lastOK.Store(t.UnixNano()) }

// Failed records at t a write that failed with err.
func (h *Record) Failed(t time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lastFail.After(time.Unix(0, h.lastOK.Load())) {
		h.firstFail = t
	}
	h.lastFail, h.lastErr = t, err
}

// FailedIf records at t a write that failed with err if storage says err
// is the store's failure to take writes (a full disk, a read-only
// database); a statement's own failure (a constraint, a lost lease, a
// handler's error) and nil are not recorded.
func (h *Record) FailedIf(t time.Time, err error, storage func(error) bool) {
	if err != nil && storage(err) {
		h.Failed(t, err)
	}
}

// Err is nil unless the last failure is at most FailureWindow before now
// and no commit followed it; then it says since when writes fail and wraps
// the last error.
func (h *Record) Err(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastErr == nil || !h.lastFail.After(time.Unix(0, h.lastOK.Load())) || now.Sub(h.lastFail) > FailureWindow {
		return nil
	}
	return fmt.Errorf("writes failing since %s (last %s ago): %w",
		h.firstFail.UTC().Format(time.RFC3339), now.Sub(h.lastFail).Round(time.Millisecond), h.lastErr)
}
