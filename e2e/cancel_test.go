package e2e

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// compensated returns the steps of every CompensationRequested event of
// the order, in order.
func compensated(t *testing.T, sys *harness.System, id string) []string {
	t.Helper()
	evs, err := sys.Client().Events(timeout(t, 30*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range evs {
		if e.Type != "CompensationRequested" {
			continue
		}
		var d struct {
			Steps []string `json:"steps"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatalf("CompensationRequested of %s: %v", id, err)
		}
		steps = append(steps, d.Steps...)
	}
	slices.Sort(steps)
	return steps
}

// Scenario 5. A customer cancels orders in flight: the compensations are
// exactly those of the steps done (or revealed done by a late reply), and
// nothing is asked of a service the saga had not reached.
func TestCancelInFlight(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		sys := start(t, queueURL, harness.Config{})
		c := sys.Client()
		ctx := timeout(t, 3*time.Minute)

		// A: the payment gateway is slow, so the orders wait in
		// STOCK_RESERVED with their charge in flight. Cancelled there,
		// they release the stock at once and refund the charge when it
		// is confirmed; shipping never hears of them.
		if err := c.SetFault(ctx, harness.PaymentService, "payment_latency", "1s"); err != nil {
			t.Fatal(err)
		}
		a := placeAll(t, ctx, sys, orderMix(3, 5, "SKU-1", "SKU-3"))
		waitStatus(t, sys, 30*time.Second, harness.StatusStockReserved, ids(a)...)
		for _, o := range a {
			if v, err := c.CancelOrder(ctx, o.ID, "changed my mind"); err != nil || v.Status != harness.StatusCancelling {
				t.Fatalf("cancel %s in STOCK_RESERVED: got %s, %v, want CANCELLING", o.ID, v.Status, err)
			}
		}
		waitTerminal(t, sys, time.Minute, ids(a)...)
		if err := c.ResetFault(ctx, harness.PaymentService, "payment_latency"); err != nil {
			t.Fatal(err)
		}

		// B: the carrier is slow, so the orders wait in PAYMENT_CHARGED
		// with their shipment in flight: cancelled there, stock and
		// payment are compensated at once, the shipment when scheduled.
		if err := c.SetFault(ctx, harness.ShippingService, "shipping_latency", "1s"); err != nil {
			t.Fatal(err)
		}
		b := placeAll(t, ctx, sys, orderMix(3, 6, "SKU-2", "SKU-4"))
		waitStatus(t, sys, 30*time.Second, harness.StatusPaymentCharged, ids(b)...)
		for _, o := range b {
			if v, err := c.CancelOrder(ctx, o.ID, "found it cheaper"); err != nil || v.Status != harness.StatusCancelling {
				t.Fatalf("cancel %s in PAYMENT_CHARGED: got %s, %v, want CANCELLING", o.ID, v.Status, err)
			}
		}
		waitTerminal(t, sys, time.Minute, ids(b)...)
		if err := c.ResetFault(ctx, harness.ShippingService, "shipping_latency"); err != nil {
			t.Fatal(err)
		}

		// C: a completed order cannot be cancelled any more.
		done := placeAll(t, ctx, sys, orderMix(1, 7, "SKU-1"))[0]
		waitTerminal(t, sys, time.Minute, done.ID)
		if _, err := c.CancelOrder(ctx, done.ID, "too late"); harness.StatusOf(err) != 409 {
			t.Errorf("cancel a COMPLETED order: got %v, want 409", err)
		}

		snap := sys.CheckInvariants(t, harness.Expect{Orders: len(a) + len(b) + 1, Deadline: 30 * time.Second})
		payments, shipments := paymentsByOrder(snap), shipmentsByOrder(snap)
		for _, o := range a {
			if got, want := compensated(t, sys, o.ID), []string{"payment", "stock"}; !slices.Equal(got, want) {
				t.Errorf("A order %s: compensated %v, want %v (stock at once, the charge once confirmed)", o.ID, got, want)
			}
			if p := payments[o.ID]; p.Status != "REFUNDED" {
				t.Errorf("A order %s: payment %+v, want REFUNDED", o.ID, p)
			}
			if sh, ok := shipments[o.ID]; ok {
				t.Errorf("A order %s: shipment %+v, want none: shipping was never reached", o.ID, sh)
			}
		}
		for _, o := range b {
			if got, want := compensated(t, sys, o.ID), []string{"payment", "shipment", "stock"}; !slices.Equal(got, want) {
				t.Errorf("B order %s: compensated %v, want %v", o.ID, got, want)
			}
			if p := payments[o.ID]; p.Status != "REFUNDED" {
				t.Errorf("B order %s: payment %+v, want REFUNDED", o.ID, p)
			}
			if sh := shipments[o.ID]; sh.Status != "CANCELLED" {
				t.Errorf("B order %s: shipment %+v, want CANCELLED", o.ID, sh)
			}
		}
		for _, o := range append(a, b...) {
			if v, err := c.GetOrder(ctx, o.ID); err != nil || v.Status != harness.StatusCancelled {
				t.Errorf("order %s: got %s, %v, want CANCELLED", o.ID, v.Status, err)
			}
		}
	})
}
