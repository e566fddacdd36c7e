package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// waitDeadLetters polls the dead-letter queue until it holds at least n
// letters of topic and group.
func waitDeadLetters(t *testing.T, sys *harness.System, topic, group string, n int) []harness.DeadLetter {
	t.Helper()
	ctx := timeout(t, 30*time.Second)
	for {
		dls, err := sys.Client().DeadLetters(ctx, topic, group)
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) >= n {
			return dls
		}
		select {
		case <-ctx.Done():
			t.Fatalf("dead letters of %s for %s: got %d, want %d", topic, group, len(dls), n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deadLetterSpan waits for the consumer span that dead-lettered message id
// and checks it is marked as an error with a dead_letter event.
func deadLetterSpan(t *testing.T, sys *harness.System, service, topic, messageID string) harness.Span {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		spans := sys.Receiver().Spans(func(s harness.Span) bool {
			return s.Service == service && s.Name == "process "+topic && s.Attrs["messaging.message.id"] == messageID && s.HasEvent("dead_letter")
		})
		if len(spans) > 0 {
			s := spans[len(spans)-1]
			if !s.Error {
				t.Errorf("the span that dead-lettered %s is not marked as an error: %+v", messageID, s)
			}
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s span of %s with a dead_letter event for message %s", "process "+topic, service, messageID)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Scenario 9. A poison (unreadable) message lands in the dead-letter queue
// with its reason while the queue keeps flowing; charges that keep failing
// are dead-lettered after their attempts and, once the fault is fixed,
// `queuectl dlq replay` puts them back and the orders complete; replaying
// the poison only dead-letters it again.
func TestDeadLetterAndReplay(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		sys := start(t, queueURL, harness.Config{
			Traces:      true,
			StepTimeout: 90 * time.Second, // the orders wait for the replay
			ServiceEnv:  map[string]map[string]string{harness.PaymentService: {"MAX_ATTEMPTS": "3"}},
		})
		c := sys.Client()
		ctx := timeout(t, 3*time.Minute)

		// The poison: payment publishes an unreadable PaymentCharged; the
		// order service dead-letters it at once, without a retry.
		if err := c.SetFault(ctx, harness.PaymentService, "poison", true); err != nil {
			t.Fatal(err)
		}
		poison := waitDeadLetters(t, sys, "payment.events", harness.OrderService, 1)[0]
		if r := poison.Metadata["dead_letter_reason"]; r != "permanent" || poison.Attempts != 1 || poison.LastError == "" {
			t.Errorf("poison dead letter: reason %q, %d attempts, last error %q; want permanent, 1 attempt, the decoding error",
				r, poison.Attempts, poison.LastError)
		}
		if poison.Payload == nil || !strings.Contains(*poison.Payload, "poison") {
			t.Errorf("poison dead letter payload: got %v, want the unreadable payload", poison.Payload)
		}
		deadLetterSpan(t, sys, harness.OrderService, "payment.events", poison.MessageUUID)

		// The queue keeps flowing.
		flowing := placeAll(t, ctx, sys, orderMix(3, 9, "SKU-1", "SKU-2"))
		for id, o := range waitTerminal(t, sys, time.Minute, ids(flowing)...) {
			if o.Status != harness.StatusCompleted {
				t.Errorf("order %s after the poison: %s, want COMPLETED", id, o.Status)
			}
		}

		// Charges that keep failing go to the DLQ after 3 attempts; the
		// span of the last attempt is marked as an error.
		if err := c.SetFault(ctx, harness.PaymentService, "payment_transient_error_rate", 1); err != nil {
			t.Fatal(err)
		}
		stuck := placeAll(t, ctx, sys, orderMix(2, 10, "SKU-3"))
		dead := waitDeadLetters(t, sys, "payment.commands", harness.PaymentService, len(stuck))
		for _, dl := range dead {
			if r := dl.Metadata["dead_letter_reason"]; r != "max attempts" || dl.Attempts != 3 || !strings.Contains(dl.LastError, "transient") {
				t.Errorf("dead letter %d: reason %q after %d attempts (%q), want max attempts after 3, a transient error", dl.ID, r, dl.Attempts, dl.LastError)
			}
			s := deadLetterSpan(t, sys, harness.PaymentService, "payment.commands", dl.MessageUUID)
			if s.Attrs["messaging.delivery.attempt"] != "3" || !s.HasEvent("retry") {
				t.Errorf("span of the dead-lettered attempt: attempt %q, events %v; want attempt 3 with a retry event", s.Attrs["messaging.delivery.attempt"], s.Events)
			}
		}
		for _, o := range stuck {
			if v, err := c.GetOrder(ctx, o.ID); err != nil || v.Status != harness.StatusStockReserved {
				t.Fatalf("order %s with its charge dead-lettered: %s, %v; want it waiting in STOCK_RESERVED", o.ID, v.Status, err)
			}
		}

		// Fix, then replay with the CLI.
		if err := c.SetFault(ctx, harness.PaymentService, "payment_transient_error_rate", 0); err != nil {
			t.Fatal(err)
		}
		out, err := c.Queuectl(ctx, "--json", "dlq", "replay", "--all", "--topic", "payment.commands")
		if err != nil {
			t.Fatal(err)
		}
		var replayed struct{ Replayed int }
		if err := json.Unmarshal([]byte(out), &replayed); err != nil || replayed.Replayed != len(stuck) {
			t.Fatalf("queuectl dlq replay: got %q, %v; want %d replayed", out, err, len(stuck))
		}
		for id, o := range waitTerminal(t, sys, time.Minute, ids(stuck)...) {
			if o.Status != harness.StatusCompleted {
				t.Errorf("order %s after the replay: %s, want COMPLETED", id, o.Status)
			}
			checkCompletedTrace(t, sys, o)
		}

		// Replaying the poison dead-letters it again: no crash, no loop.
		if _, err := c.Queuectl(ctx, "dlq", "replay", itoa(poison.ID)); err != nil {
			t.Fatal(err)
		}
		// Dead-lettered again: a new entry, or, when the consumer failed
		// before the replay removed the old one, the old entry with a later
		// dead-at (the queue keeps one entry per message and group).
		again := waitDeadLetters(t, sys, "payment.events", harness.OrderService, 1)
		if again[0].MessageUUID != poison.MessageUUID || (again[0].ID == poison.ID && !again[0].DeadAt.After(poison.DeadAt)) {
			t.Errorf("after replaying the poison: dead letters %+v, want it dead-lettered again (was %+v)", again, poison)
		}
		if out, err := c.Queuectl(ctx, "dlq", "purge", "--topic", "payment.events", "--yes"); err != nil || !strings.Contains(out, "purged 1") {
			t.Errorf("queuectl dlq purge: got %q, %v", out, err)
		}
		sys.CheckInvariants(t, harness.Expect{Orders: len(flowing) + len(stuck), IDs: ids(append(flowing, stuck...))})
	})
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
