// Package backendtest holds test helpers shared by the queue's backend
// packages (sqlite, postgres), for the behaviour every backend must have.
package backendtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
)

// ExpectClosed fails the test for every message ch hands out before it
// closes, and fatally if it is still open after 15 s: what a subscription
// whose context ended must do.
func ExpectClosed(t testing.TB, ch <-chan *message.Message) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return
			}
			t.Errorf("message %s handed out after the subscription's context ended", m.UUID)
		case <-timeout:
			t.Fatal("channel still open 15s after the subscription's context ended")
		}
	}
}

// SubscribeRacingClose calls Subscribe and Close of a fresh subscriber at
// the same time, rounds times (run it under -race): a process told to stop
// while its router subscribes. Subscribe must either fail or return a
// channel that closes; nothing may panic (a WaitGroup reused while Close
// waits on it) or keep running after Close returned.
func SubscribeRacingClose(t *testing.T, rounds int, newSubscriber func() message.Subscriber, topic string) {
	t.Helper()
	for range rounds {
		sub := newSubscriber()
		var (
			wg     sync.WaitGroup
			ch     <-chan *message.Message
			subErr error
		)
		wg.Go(func() { ch, subErr = sub.Subscribe(context.Background(), topic) })
		wg.Go(func() { _ = sub.Close() })
		wg.Wait()
		if subErr == nil {
			ExpectClosed(t, ch)
		}
	}
}

// ExpectAbandonedRuns fails the test unless m carries
// backend.MetadataAbandoned want: its delivery's count of abandoned runs
// alone. when says at which point of the test ("" for none).
func ExpectAbandonedRuns(t testing.TB, m *message.Message, want, when string) {
	t.Helper()
	if got := m.Metadata.Get(backend.MetadataAbandoned); got != want {
		if when != "" {
			when = " " + when
		}
		t.Errorf("%s's abandoned runs%s: got %q, want %q", m.UUID, when, got, want)
	}
}
