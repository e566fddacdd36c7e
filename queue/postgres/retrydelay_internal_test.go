package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
)

// The delay a nack asks for (the retry middleware's backoff) holds for the
// whole group, and across restarts: it is stored with the delivery, and
// any consumer that takes the message before it is over waits out the
// rest. Before, the consumer that nacked waited in memory, and a delay
// longer than its ack deadline ended its batch and freed the group's lock:
// another consumer took the message at once; a restart forgot the delay.
func TestANackDelayHoldsForTheWholeGroup(t *testing.T) {
	const ackDeadline = 2 * time.Second
	for _, tc := range []struct {
		name string
		// stopFirst closes the first consumer right after its nack (a
		// restart); else it stays, waiting out the delay itself.
		stopFirst  bool
		retryDelay time.Duration
	}{
		{name: "a competing consumer", stopFirst: false, retryDelay: 3 * time.Second},
		{name: "after a restart", stopFirst: true, retryDelay: 3 * time.Second},
		// Nearly a whole deadline: waited out in the first claim's
		// deadline, it would leave the handler almost none of it.
		{name: "after a restart, nearly a deadline", stopFirst: true, retryDelay: ackDeadline - 100*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			retryDelay := tc.retryDelay
			b := openFresh(ctx, t, Config{AckDeadline: ackDeadline})
			if err := b.ensureTopic(ctx, "jobs"); err != nil {
				t.Fatal(err)
			}
			if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", nil)); err != nil {
				t.Fatal(err)
			}

			firstSub, first := subscribeJobs(ctx, t, b)
			m := nextMessage(t, first, "the first consumer")
			m.Metadata.Set(delay.DelayedForKey, retryDelay.String())
			nacked := time.Now()
			m.Nack()
			if tc.stopFirst {
				if err := firstSub.Close(); err != nil {
					t.Fatal(err)
				}
			}
			_, second := subscribeJobs(ctx, t, b)

			var again *message.Message
			timeout := time.After(10 * time.Second)
			for again == nil {
				var ok bool
				select {
				case again, ok = <-first:
					if !ok {
						first = nil // closed
					}
				case again = <-second:
				case <-timeout:
					t.Fatal("no consumer got the message again within 10s")
				}
			}
			after := time.Since(nacked)
			if after < retryDelay-100*time.Millisecond { // the server's clock and ours may differ by a tick
				t.Errorf("handed out again %s after a nack asking for %s (attempt %s)",
					after.Round(time.Millisecond), retryDelay, again.Metadata.Get(backend.MetadataAttempt))
			}
			if got := again.Metadata.Get(backend.MetadataAttempt); got != "2" {
				t.Errorf("attempt of the message handed out again: got %s, want 2", got)
			}
			// The handler gets at least half its deadline, whatever
			// the wait took.
			if deadline, ok := again.Context().Deadline(); !ok {
				t.Error("the handler's context has no deadline")
			} else if left := time.Until(deadline); left < ackDeadline/2-100*time.Millisecond {
				t.Errorf("the handler's deadline when handed out again: got %s left, want at least half of %s",
					left.Round(time.Millisecond), ackDeadline)
			}
			again.Ack()
		})
	}
}
