package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// Scenario 15. A message that takes its service down every time it is
// handled (payment with CRASH_MID_HANDLER in its environment: each charge
// exits the process, as a Go fatal error or an out-of-memory kill would,
// with no error for the retries to count) crashes it three times,
// restarted after each crash as devrun would, and is then dead-lettered
// (reason "abandoned") instead of crashing it for ever; payment stays up.
// On PostgreSQL payment runs with MAX_ABANDONED=1: two crashes. Restarted
// without the fault, a replay of the dead letter completes the order.
func TestCrashLoopIsDeadLettered(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		env := map[string]string{"CRASH_MID_HANDLER": "true"}
		maxAbandoned, abandonedText := 2, "abandoned 2 times"
		if strings.HasPrefix(queueURL, "postgres") {
			env["MAX_ABANDONED"] = "1"
			maxAbandoned, abandonedText = 1, "abandoned once"
		}
		crashes := maxAbandoned + 1 // the first crash is not blamed on the message
		sys := start(t, queueURL, harness.Config{
			StepTimeout: 3 * time.Minute, // the order waits for the replay
			ServiceEnv:  map[string]map[string]string{harness.PaymentService: env},
		})
		ctx := timeout(t, 4*time.Minute)
		c := sys.Client()
		payment := sys.Service(harness.PaymentService)
		placing := placeInBackground(ctx, sys, orderMix(1, 150, "SKU-1"))
		for crash := 1; crash <= crashes; crash++ {
			code, err := payment.WaitExit(time.Minute) // on SQLite, a lease after the last
			if err != nil {
				t.Fatalf("crash %d: %v", crash, err)
			}
			if code != 3 {
				t.Fatalf("crash %d: payment exited with %d, want 3 (the crash point)", crash, code)
			}
			err = payment.Start(ctx)
			if err != nil && crash < crashes && !payment.Running() && payment.ExitCode() == 3 {
				// On PostgreSQL the charge comes back at once: the
				// restarted payment may crash again before it is ready
				// (the next WaitExit takes that exit).
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		r := <-placing
		if r.err != nil {
			t.Fatal(r.err)
		}
		order := r.orders[0]

		dl := waitDeadLetters(t, sys, "payment.commands", harness.PaymentService, 1)[0]
		if got := dl.Metadata["dead_letter_reason"]; got != "abandoned" || dl.Attempts != crashes+1 || !strings.Contains(dl.LastError, abandonedText) {
			t.Errorf("dead letter: reason %q after %d attempts (%q); want abandoned after %d (%d crashes, then the dead letter), %q",
				got, dl.Attempts, dl.LastError, crashes+1, crashes, abandonedText)
		}
		if !payment.Running() {
			t.Fatalf("payment after the dead letter: %s, want it running", payment.ExitStatus())
		}
		if v, err := c.GetOrder(ctx, order.ID); err != nil || v.Status != harness.StatusStockReserved {
			t.Fatalf("order %s with its charge dead-lettered: %s, %v; want it waiting in STOCK_RESERVED", order.ID, v.Status, err)
		}

		// Fix (restart without the fault), then replay.
		if err := payment.Term(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		payment.SetEnv("CRASH_MID_HANDLER", "false")
		if err := payment.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Queuectl(ctx, "dlq", "replay", itoa(dl.ID)); err != nil {
			t.Fatal(err)
		}
		if o := waitTerminal(t, sys, time.Minute, order.ID)[order.ID]; o.Status != harness.StatusCompleted {
			t.Errorf("order %s after the replay: %s, want COMPLETED", order.ID, o.Status)
		}
		sys.CheckInvariants(t, harness.Expect{Orders: 1, IDs: []string{order.ID}})
	})
}
