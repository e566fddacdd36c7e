package outbox_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/queue/outbox"
)

// Shutdown gives up on a batch whose publish hangs when its context ends,
// not at the ack deadline or CloseTimeout (30 s here): the batch is rolled
// back, so its messages stay in the outbox for the next run, and giving up
// is what a bounded stop allows, logged without an error.
func TestShutdownGivesUpOnAHungDestinationAtItsDeadline(t *testing.T) {
	db, ob := tempOutbox(t)
	inner, _ := newDestination(t, "order.events")
	dst := &hangingPublisher{Publisher: inner, release: make(chan struct{})}
	logs := &errorLogger{}
	f, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{
		Outbox: ob, AckDeadline: 30 * time.Second, CloseTimeout: 30 * time.Second, Logger: logs,
	})
	release := releaseOnce(dst.release)
	defer release()

	require.NoError(t, placeOrder(context.Background(), db, ob, "o-0"))
	require.Eventually(t, func() bool { return dst.calls.Load() >= 1 }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	require.NoError(t, f.Shutdown(ctx))
	took := time.Since(began)
	require.Less(t, took, 10*time.Second, "Shutdown with a 300ms deadline while the destination hangs; want it bounded by its context, not the 30s ack deadline")

	n, err := f.Pending(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the outbox after the stop gave up on the batch: its message stays")
	for _, msg := range logs.errors() {
		t.Errorf("logged at error level: %q; want a warning for what a bounded stop gives up", msg)
	}
}

// errorLogger keeps the messages of the records at error level.
type errorLogger struct {
	watermill.NopLogger
	mu   sync.Mutex
	msgs []string
}

func (l *errorLogger) Error(msg string, err error, _ watermill.LogFields) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, fmt.Sprintf("%s: %v", msg, err))
}

func (l *errorLogger) With(watermill.LogFields) watermill.LoggerAdapter { return l }

func (l *errorLogger) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}
