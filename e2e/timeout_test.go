package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// Scenario 10. Payment is down longer than the step timeout: the orders
// waiting for their charge time out, release their stock and ask for a
// (blind) refund; they stay CANCELLING until payment answers. When payment
// comes back it handles the stale charge requests and the refunds in
// whatever order the queue gives: a late charge is refunded, a refund that
// comes first voids the order so the late charge is declined. Either way
// each order ends CANCELLED with nothing charged, and new orders complete.
func TestPaymentDownPastStepTimeout(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		const stepTimeout = 3 * time.Second
		sys := start(t, queueURL, harness.Config{StepTimeout: stepTimeout})
		c := sys.Client()
		ctx := timeout(t, 3*time.Minute)
		warm := placeAll(t, ctx, sys, orderMix(1, 11, "SKU-1"))
		waitTerminal(t, sys, 30*time.Second, ids(warm)...)

		payment := sys.Service(harness.PaymentService)
		if err := payment.Kill(); err != nil {
			t.Fatal(err)
		}
		orders := placeAll(t, ctx, sys, orderMix(4, 12, "SKU-1", "SKU-2"))
		waitStatus(t, sys, 30*time.Second, harness.StatusCancelling, ids(orders)...)
		for _, o := range orders {
			wantEvents(t, sys, o.ID, []string{"StockReserved", "PaymentRequested", "StepTimedOut", "CompensationRequested"},
				[]string{"PaymentCharged", "ShipmentRequested"})
			if got := compensated(t, sys, o.ID); !slices.Contains(got, "payment") || !slices.Contains(got, "stock") {
				t.Errorf("order %s: compensated %v, want the stock and, blindly, the payment", o.ID, got)
			}
		}
		// Stock is released while payment is still down.
		waitFor(t, 30*time.Second, "the timed-out orders' stock released", func() bool {
			var inv harness.InventoryState
			if err := c.AdminGet(ctx, harness.InventoryService, "/state", &inv); err != nil {
				t.Fatal(err)
			}
			return inv.Reservations["RELEASED"] == len(orders)
		})
		// Down past the blind refunds' deadline (the compensation timeout
		// is the step timeout): each deadline passes again (a second
		// StepTimedOut) and the refund is sent again (a second
		// CompensationRequested, for the payment), and the orders stay
		// CANCELLING until payment confirms.
		for _, o := range orders {
			var evs []harness.Event
			waitFor(t, 30*time.Second, "order "+o.ID+"'s refund sent again", func() bool {
				evs = orderEvents(t, sys, o.ID)
				return len(ofType(evs, "StepTimedOut")) >= 2 && len(ofType(evs, "CompensationRequested")) >= 2
			})
			timedOut, compensations := ofType(evs, "StepTimedOut"), ofType(evs, "CompensationRequested")
			if steps := eventSteps(t, timedOut[1]); !slices.Contains(steps, "payment") {
				t.Errorf("order %s: second StepTimedOut for %v, want the payment's refund among them", o.ID, steps)
			}
			if steps := eventSteps(t, compensations[1]); !slices.Contains(steps, "payment") {
				t.Errorf("order %s: second CompensationRequested for %v, want the refund sent again", o.ID, steps)
			}
		}
		for _, o := range orders {
			if v, err := c.GetOrder(ctx, o.ID); err != nil || v.Status != harness.StatusCancelling {
				t.Errorf("order %s while payment is down: %s, %v; want CANCELLING until the refund is confirmed", o.ID, v.Status, err)
			}
		}

		if err := payment.Start(ctx); err != nil {
			t.Fatal(err)
		}
		for id, o := range waitTerminal(t, sys, time.Minute, ids(orders)...) {
			if o.Status != harness.StatusCancelled {
				t.Errorf("order %s: %s (%q), want CANCELLED", id, o.Status, o.Reason)
			}
		}
		after := placeAll(t, ctx, sys, orderMix(2, 13, "SKU-3"))
		for id, o := range waitTerminal(t, sys, 30*time.Second, ids(after)...) {
			if o.Status != harness.StatusCompleted {
				t.Errorf("order %s placed after payment came back: %s, want COMPLETED", id, o.Status)
			}
		}
		snap := sys.CheckInvariants(t, harness.Expect{Orders: len(warm) + len(orders) + len(after), IDs: ids(slices.Concat(warm, orders, after))})
		payments, shipments := paymentsByOrder(snap), shipmentsByOrder(snap)
		for _, o := range orders {
			if p := payments[o.ID]; p.Status != "REFUNDED" && p.Status != "VOIDED" {
				t.Errorf("order %s: payment %+v, want REFUNDED (charged late, then refunded) or VOIDED (refund first)", o.ID, p)
			}
			if sh, ok := shipments[o.ID]; ok {
				t.Errorf("order %s: shipment %+v, want none", o.ID, sh)
			}
		}
	})
}

// Scenario 11. The order service is SIGKILLed mid-saga and started again:
// the sagas resume from their event streams and complete; and deadlines
// that passed while it was down still fire after the restart.
func TestOrderServiceKilledMidSaga(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		const stepTimeout = 5 * time.Second
		sys := start(t, queueURL, harness.Config{
			StepTimeout: stepTimeout,
			// Handlers take a moment, so the sagas are mid-way at the kill.
			ServiceEnv: map[string]map[string]string{
				harness.InventoryService: {"HANDLER_LATENCY": "30ms"},
				harness.PaymentService:   {"HANDLER_LATENCY": "30ms"},
				harness.ShippingService:  {"HANDLER_LATENCY": "30ms"},
			},
		})
		c := sys.Client()
		ctx := timeout(t, 3*time.Minute)
		order := sys.Service(harness.OrderService)

		// Resume: kill while replies are flowing, start again at once.
		// Until the kill the carrier takes 2s per shipment, so the orders
		// placed last are still in flight, with time to spare, when the
		// test counts them right after placing them and kills the order
		// service. Then the shipments not yet started take no time: on
		// PostgreSQL shipping books one at a time, and 2s each would push
		// the last orders past the step timeout.
		if err := c.SetFault(ctx, harness.ShippingService, "shipping_latency", "2s"); err != nil {
			t.Fatal(err)
		}
		a := placeAll(t, ctx, sys, orderMix(12, 14, "SKU-1", "SKU-2", "SKU-3"))
		inFlight := 0
		for _, o := range a {
			v, err := c.GetOrder(ctx, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !harness.Terminal(v.Status) {
				inFlight++
			}
		}
		if inFlight == 0 {
			t.Fatalf("all %d orders were terminal before the kill, want some in flight: nothing would resume", len(a))
		}
		if err := order.Kill(); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		if err := c.ResetFault(ctx, harness.ShippingService, "shipping_latency"); err != nil {
			t.Fatal(err)
		}
		if err := order.Start(ctx); err != nil {
			t.Fatal(err)
		}
		// An order counted in flight may still have finished between the
		// count and the kill; one that finished after the kill was
		// certainly finished by the restarted process.
		resumed := 0
		for id, o := range waitTerminal(t, sys, time.Minute, ids(a)...) {
			if o.Status != harness.StatusCompleted {
				t.Errorf("order %s: %s (%q), want COMPLETED after the restart", id, o.Status, o.Reason)
			}
			if o.FinishedAt != nil && o.FinishedAt.After(killed) {
				resumed++
			}
		}
		if resumed == 0 {
			t.Errorf("no order finished after the restart (%d counted in flight before the kill), want some resumed", inFlight)
		}
		t.Logf("%d of %d orders were in flight at the kill, %d finished after the restart", inFlight, len(a), resumed)

		// Timeouts: payment is down, the orders wait for their charges;
		// the order service is killed and stays down past their deadlines.
		// Started again, it fires them.
		payment := sys.Service(harness.PaymentService)
		if err := payment.Kill(); err != nil {
			t.Fatal(err)
		}
		b := placeAll(t, ctx, sys, orderMix(3, 15, "SKU-4"))
		waitStatus(t, sys, 30*time.Second, harness.StatusStockReserved, ids(b)...)
		if err := order.Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(stepTimeout + time.Second)
		restarted := time.Now()
		if err := order.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, sys, 30*time.Second, harness.StatusCancelling, ids(b)...)
		for _, o := range b {
			wantEvents(t, sys, o.ID, []string{"StepTimedOut", "CompensationRequested"}, nil)
			// The deadline passed while the order service was down, and
			// the new process fired it: recorded after the restart (the
			// store keeps milliseconds).
			timedOut := ofType(orderEvents(t, sys, o.ID), "StepTimedOut")
			if len(timedOut) == 0 {
				continue // wantEvents said so
			}
			first := timedOut[0]
			var d struct {
				Deadline time.Time `json:"deadline"`
			}
			if err := json.Unmarshal(first.Data, &d); err != nil {
				t.Fatalf("StepTimedOut of %s: %v", o.ID, err)
			}
			if !d.Deadline.Before(restarted) {
				t.Errorf("order %s: StepTimedOut for the deadline %s, want one that passed while the order service was down (restarted at %s)",
					o.ID, d.Deadline.Format(time.StampMilli), restarted.Format(time.StampMilli))
			}
			if first.RecordedAt.Before(restarted.Truncate(time.Millisecond)) {
				t.Errorf("order %s: StepTimedOut recorded at %s, before the order service was started again at %s: want it fired by the new process",
					o.ID, first.RecordedAt.Format(time.StampMilli), restarted.Format(time.StampMilli))
			}
		}
		if err := payment.Start(ctx); err != nil {
			t.Fatal(err)
		}
		for id, o := range waitTerminal(t, sys, time.Minute, ids(b)...) {
			if o.Status != harness.StatusCancelled {
				t.Errorf("order %s: %s, want CANCELLED after its timeout", id, o.Status)
			}
		}
		sys.CheckInvariants(t, harness.Expect{Orders: len(a) + len(b), IDs: ids(slices.Concat(a, b))})
	})
}

// waitFor polls cond every 50ms until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: not yet %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// orderEvents returns an order's event stream.
func orderEvents(t *testing.T, sys *harness.System, id string) []harness.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs, err := sys.Client().Events(ctx, id)
	if err != nil {
		t.Fatalf("events of %s: %v", id, err)
	}
	return evs
}

// ofType returns the events of type typ, in order.
func ofType(evs []harness.Event, typ string) []harness.Event {
	var out []harness.Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// eventSteps returns the steps of a StepTimedOut or CompensationRequested.
func eventSteps(t *testing.T, e harness.Event) []string {
	t.Helper()
	var d struct {
		Steps []string `json:"steps"`
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		t.Fatalf("%s at version %d: %v", e.Type, e.Version, err)
	}
	return d.Steps
}
