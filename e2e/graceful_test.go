package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// Scenario 14. SIGTERM while a handler runs: the service lets the handler
// finish and records its ack before it exits (within 70 % of
// SHUTDOWN_TIMEOUT, 10 s by default), so the message is not delivered
// again. Payment takes 2 s per charge; it gets SIGTERM while it holds one.
// It exits 0, and before it is started again its consumer group has
// nothing left on payment.commands: nothing in flight, nothing waiting
// (before graceful stops, the charge was cancelled and released, and
// waited there for the next payment process, its attempt counted). Once
// payment is back the order completes, charged once.
func TestGracefulStopFinishesTheRunningHandler(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		sys := start(t, queueURL, harness.Config{})
		c := sys.Client()
		ctx := timeout(t, 2*time.Minute)
		if err := c.SetFault(ctx, harness.PaymentService, "payment_latency", "2s"); err != nil {
			t.Fatal(err)
		}
		order := placeAll(t, ctx, sys, orderMix(1, 140, "SKU-1"))[0]

		// The charge is being handled once payment's group holds it.
		if _, err := waitPaymentCommands(ctx, sys, func(g harness.GroupStats) bool { return g.InFlight == 1 }); err != nil {
			t.Fatalf("waiting for payment to hold the charge: %v", err)
		}
		payment := sys.Service(harness.PaymentService)
		if err := payment.Term(30 * time.Second); err != nil {
			t.Fatal(err) // Term wants exit status 0
		}
		g, err := waitPaymentCommands(ctx, sys, func(harness.GroupStats) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		if g.InFlight != 0 || g.Depth != 0 || g.Retrying != 0 {
			t.Errorf("payment.commands for group payment after payment stopped: %d in flight, %d waiting, %d retrying; want none: the running charge finishes and is acked before the process exits",
				g.InFlight, g.Depth, g.Retrying)
		}

		if err := payment.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.ResetFault(ctx, harness.PaymentService, "payment_latency"); err != nil {
			t.Fatal(err)
		}
		final := waitTerminal(t, sys, time.Minute, order.ID)
		if got := final[order.ID].Status; got != harness.StatusCompleted {
			t.Errorf("order %s: %s, want COMPLETED", order.ID, got)
		}
		sys.CheckInvariants(t, harness.Expect{Orders: 1, IDs: []string{order.ID}})
	})
}

// waitPaymentCommands polls the queue's statistics (through the order
// service's admin API) until the payment group's view of payment.commands
// satisfies ok, and returns it.
func waitPaymentCommands(ctx context.Context, sys *harness.System, ok func(harness.GroupStats) bool) (harness.GroupStats, error) {
	for {
		stats, err := sys.Client().QueueStats(ctx)
		if err == nil {
			for _, topic := range stats {
				if topic.Topic != "payment.commands" {
					continue
				}
				for _, g := range topic.Groups {
					if g.ConsumerGroup == harness.PaymentService && ok(g) {
						return g, nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return harness.GroupStats{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
