package adapters

import (
	"fmt"
	"sync"
	"time"
)

// WriteFailureWindow is how long a transaction that failed for storage
// (app.ErrStorageUnavailable) keeps Store.WriteHealth failing when none
// has committed since: the outbox forwarder, the reply handlers and the
// timeout loop write every second or so while there is work, so an
// outage keeps it fresh, and an idle service is not held unready by one
// old failure.
const WriteFailureWindow = 10 * time.Second

// writeHealth records the outcome of the Store's transactions.
type writeHealth struct {
	mu                  sync.Mutex
	lastOK              time.Time
	firstFail, lastFail time.Time // firstFail: the first failure after lastOK
	lastErr             error
}

func (h *writeHealth) record(err error) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.lastOK = now
		return
	}
	if !h.lastFail.After(h.lastOK) {
		h.firstFail = now
	}
	h.lastFail, h.lastErr = now, err
}

// err is nil unless the last failure is within window before now and no
// commit followed it.
func (h *writeHealth) err(now time.Time, window time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastErr == nil || !h.lastFail.After(h.lastOK) || now.Sub(h.lastFail) > window {
		return nil
	}
	return fmt.Errorf("order database writes failing since %s (last %s ago): %w",
		h.firstFail.UTC().Format(time.RFC3339), now.Sub(h.lastFail).Round(time.Millisecond), h.lastErr)
}
