package sqlite

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"
)

// WriteFailureWindow is how long a failed write transaction keeps
// WriteHealth failing when no write has been committed since: the writer
// is tried again every few hundred milliseconds while the process has
// work (claims, acks, the outbox forwarder's publishes), so an outage
// keeps it fresh, and an idle process is not held unready by one old
// failure.
const WriteFailureWindow = 10 * time.Second

// writeHealth records the outcome of the writer's transactions for
// WriteHealth. succeeded is the writer's hot path: one atomic store.
type writeHealth struct {
	lastOK atomic.Int64 // unix nanoseconds of the last commit

	mu        sync.Mutex
	firstFail time.Time // first failure after the last commit
	lastFail  time.Time
	lastErr   error
}

func (h *writeHealth) succeeded(t time.Time) { h.lastOK.Store(t.UnixNano()) }

func (h *writeHealth) failed(t time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lastFail.After(time.Unix(0, h.lastOK.Load())) {
		h.firstFail = t
	}
	h.lastFail, h.lastErr = t, err
}

// err is nil unless the last failure is within window before now and no
// commit followed it.
func (h *writeHealth) err(now time.Time, window time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastErr == nil || !h.lastFail.After(time.Unix(0, h.lastOK.Load())) || now.Sub(h.lastFail) > window {
		return nil
	}
	return fmt.Errorf("writes failing since %s (last %s ago): %w",
		h.firstFail.UTC().Format(time.RFC3339), now.Sub(h.lastFail).Round(time.Millisecond), h.lastErr)
}

// storageFailure reports whether err says the file cannot take writes, as
// opposed to one op's own failure (a lost lease, a constraint): SQLite's
// disk full, I/O error, corruption, cannot open, read-only.
func storageFailure(err error) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrFull, sqlite3.ErrIoErr, sqlite3.ErrCorrupt, sqlite3.ErrNotADB, sqlite3.ErrCantOpen, sqlite3.ErrReadonly:
		return true
	}
	return false
}

// noteWriteError records err, an error of a write of the writer, as a
// write failure if it is a storageFailure.
func (b *Backend) noteWriteError(err error) {
	if err != nil && storageFailure(err) {
		b.health.failed(time.Now(), err)
	}
}

// WriteHealth reports, without writing, whether this process can write to
// the queue: an error when its last write transaction failed (begin, commit,
// or an op on a full, failing or corrupt file) within WriteFailureWindow
// with none committed since, or when the path it opened no longer names the
// file it has open (checkFile). nil otherwise. A readiness check calls it.
func (b *Backend) WriteHealth() error {
	if err := b.replaced.Load(); err != nil {
		return *err
	}
	if err := b.health.err(time.Now(), WriteFailureWindow); err != nil {
		return fmt.Errorf("sqlite queue %s: %w", b.path, err)
	}
	return nil
}
