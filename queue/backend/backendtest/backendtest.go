// Package backendtest holds test helpers shared by the queue's backend
// packages (sqlite, postgres), for the behaviour every backend must have.
package backendtest

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
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
