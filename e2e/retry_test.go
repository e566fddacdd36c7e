package e2e

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// Scenario 6. Charges fail with a transient gateway error (all of them at
// first, then half, then none, see below): the queue retries them with
// backoff and every order completes, charged once; each retry is visible
// in the order's trace as another "process payment.commands" span with its
// attempt number and a "retry" event, the failed attempts marked as errors.
func TestTransientPaymentErrors(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		sys := start(t, queueURL, harness.Config{
			Traces: true,
			// Enough attempts that the failures never exhaust them.
			ServiceEnv: map[string]map[string]string{harness.PaymentService: {"MAX_ATTEMPTS": "20"}},
		})
		c := sys.Client()
		ctx := timeout(t, 3*time.Minute)
		// The failure rate is stepped so that chance decides nothing the
		// test checks. At 50% throughout, all 8 charges succeed at once
		// in 0.4% of runs (0.5^8), leaving no retry for the trace check
		// below; and one of them fails 12 times running, over 2 minutes
		// of backoff (it doubles from 100ms up to 30s), in 0.2%. So: every
		// charge fails until payment has failed one, which is then retried
		// for certain; half of them fail for halfPhase; then none, and
		// every charge still failing succeeds at its next attempt.
		const halfPhase = 3 * time.Second
		setRate := func(rate float64) {
			t.Helper()
			if err := c.SetFault(ctx, harness.PaymentService, "payment_transient_error_rate", rate); err != nil {
				t.Fatal(err)
			}
		}
		setRate(1)
		const n = 8
		orders := placeAll(t, ctx, sys, orderMix(n, 8, "SKU-1", "SKU-3", "SKU-4"))
		waitFor(t, 30*time.Second, "a failed charge", func() bool { return failedPaymentCommands(t, ctx, sys) > 0 })
		setRate(0.5)
		time.Sleep(halfPhase)
		setRate(0)
		final := waitTerminal(t, sys, 2*time.Minute, ids(orders)...)
		if got := statuses(final); got[harness.StatusCompleted] != n {
			t.Fatalf("statuses: got %v, want all %d COMPLETED despite the transient errors", got, n)
		}
		sys.CheckInvariants(t, harness.Expect{Orders: n, IDs: ids(orders)})

		retried := 0
		for _, o := range orders {
			spans := checkCompletedTrace(t, sys, final[o.ID])
			if n, err := chargeAttempts(spans); err != nil {
				t.Errorf("order %s: %v\n%s", o.ID, err, harness.NewTree(spans).Dump())
			} else if n > 1 {
				retried++
			}
		}
		if retried == 0 {
			t.Errorf("no trace of %d shows a retried charge, want at least one: payment failed one for certain", n)
		}
		t.Logf("%d of %d charges were retried", retried, n)
	})
}

// failedPaymentCommands returns how many payment commands have failed since
// the payment process started (its orderflow.messages.handled counter with
// outcome "failed").
func failedPaymentCommands(t *testing.T, ctx context.Context, sys *harness.System) int {
	t.Helper()
	text, err := sys.Client().Metrics(ctx, harness.PaymentService)
	if err != nil {
		t.Fatal(err)
	}
	return harness.MessagesHandled(text, "failed")
}

// chargeAttempts checks the "process payment.commands" spans of a
// completed order's trace: attempts 1..k, all children of the one publish
// span, each after the first with a "retry" event, all but the last marked
// as errors. It returns k.
func chargeAttempts(spans []harness.Span) (int, error) {
	tree := harness.NewTree(spans)
	attempts := tree.Find(func(s harness.Span) bool {
		return s.Name == "process payment.commands" && s.Service == harness.PaymentService
	})
	if len(attempts) == 0 {
		return 0, fmt.Errorf("no process payment.commands span")
	}
	byAttempt := map[int]harness.Span{}
	for _, s := range attempts {
		a, err := strconv.Atoi(s.Attrs["messaging.delivery.attempt"])
		if err != nil {
			return 0, fmt.Errorf("%s: attempt attribute %q", s, s.Attrs["messaging.delivery.attempt"])
		}
		if _, dup := byAttempt[a]; dup {
			return 0, fmt.Errorf("two spans of attempt %d", a)
		}
		byAttempt[a] = s
	}
	k := len(attempts)
	parent := byAttempt[1].ParentSpanID
	for a := 1; a <= k; a++ {
		s, ok := byAttempt[a]
		switch {
		case !ok:
			return 0, fmt.Errorf("attempts %v: %d is missing", keys(byAttempt), a)
		case s.ParentSpanID != parent:
			return 0, fmt.Errorf("attempt %d has parent %s, attempt 1 %s: want the same publish span", a, s.ParentSpanID, parent)
		case a > 1 && !s.HasEvent("retry"):
			return 0, fmt.Errorf("attempt %d has no retry event", a)
		case a == 1 && s.HasEvent("retry"):
			return 0, fmt.Errorf("attempt 1 has a retry event")
		case a < k && !s.Error:
			return 0, fmt.Errorf("attempt %d of %d is not marked as an error", a, k)
		case a == k && s.Error:
			return 0, fmt.Errorf("the last attempt (%d) is marked as an error: %s", a, s.StatusMsg)
		}
	}
	return k, nil
}

func keys[V any](m map[int]V) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}
