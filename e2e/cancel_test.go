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

// holdFor is how long a latency fault holds an order in the state it is
// to be cancelled in. Within it the test needs only a few status polls and
// a cancel request per order, but under -race, with other packages' tests
// on the same two cores, 1s was not a safe margin for that. The fault is
// lifted as soon as the orders are cancelled, and A's hold overlaps B's,
// so the longer hold costs the test little time.
const holdFor = 5 * time.Second

// cancelIn cancels each order as soon as it is in status, where a latency
// fault holds it (holdFor from the moment it got there), and requires the
// answer CANCELLING. Each order is cancelled as soon as it is seen there,
// not after all of them are, so that the window is not spent on the others.
func cancelIn(t *testing.T, sys *harness.System, status, reason string, orders []harness.Order) {
	t.Helper()
	ctx := timeout(t, time.Minute)
	for _, o := range orders {
		waitStatus(t, sys, 30*time.Second, status, o.ID)
		if v, err := sys.Client().CancelOrder(ctx, o.ID, reason); err != nil || v.Status != harness.StatusCancelling {
			t.Fatalf("cancel %s in %s: got %s, %v, want CANCELLING", o.ID, status, v.Status, err)
		}
	}
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
		if err := c.SetFault(ctx, harness.PaymentService, "payment_latency", holdFor.String()); err != nil {
			t.Fatal(err)
		}
		a := placeAll(t, ctx, sys, orderMix(3, 5, "SKU-1", "SKU-3"))
		cancelIn(t, sys, harness.StatusStockReserved, "changed my mind", a)
		// Every order is cancelled: the latency has done its job. The
		// charges already held finish their hold; the refunds and B's
		// charges need none.
		if err := c.ResetFault(ctx, harness.PaymentService, "payment_latency"); err != nil {
			t.Fatal(err)
		}

		// B: the carrier is slow, so the orders wait in PAYMENT_CHARGED
		// with their shipment in flight: cancelled there, stock and
		// payment are compensated at once, the shipment when scheduled.
		// Placed while A's charges are still held: the two holds overlap.
		if err := c.SetFault(ctx, harness.ShippingService, "shipping_latency", holdFor.String()); err != nil {
			t.Fatal(err)
		}
		b := placeAll(t, ctx, sys, orderMix(3, 6, "SKU-2", "SKU-4"))
		cancelIn(t, sys, harness.StatusPaymentCharged, "found it cheaper", b)
		if err := c.ResetFault(ctx, harness.ShippingService, "shipping_latency"); err != nil {
			t.Fatal(err)
		}
		waitTerminal(t, sys, time.Minute, ids(append(a, b...))...)

		// C: a completed order cannot be cancelled any more.
		done := placeAll(t, ctx, sys, orderMix(1, 7, "SKU-1"))[0]
		waitTerminal(t, sys, time.Minute, done.ID)
		if _, err := c.CancelOrder(ctx, done.ID, "too late"); harness.StatusOf(err) != 409 {
			t.Errorf("cancel a COMPLETED order: got %v, want 409", err)
		}

		snap := sys.CheckInvariants(t, harness.Expect{Orders: len(a) + len(b) + 1, IDs: append(ids(append(a, b...)), done.ID), Deadline: 30 * time.Second})
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
