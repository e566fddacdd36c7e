package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// wantEvents fails the test unless the order's stream holds every type of
// want and none of unwanted.
func wantEvents(t *testing.T, sys *harness.System, id string, want, unwanted []string) {
	t.Helper()
	got := eventTypes(t, sys, id)
	for _, w := range want {
		if !contains(got, w) {
			t.Errorf("order %s: events %v, want %s among them", id, got, w)
		}
	}
	for _, u := range unwanted {
		if contains(got, u) {
			t.Errorf("order %s: events %v, want no %s", id, got, u)
		}
	}
}

// Scenario 2. Payment declined → CANCELLED, stock released, no charge left
// unrefunded; orders placed before the flag still complete.
func TestPaymentDeclined(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		sys := start(t, queueURL, harness.Config{})
		ctx := timeout(t, 2*time.Minute)
		before := placeAll(t, ctx, sys, orderMix(5, 2, "SKU-1", "SKU-3"))
		waitTerminal(t, sys, time.Minute, ids(before)...)

		if err := sys.Client().SetFault(ctx, harness.PaymentService, "payment_decline_rate", 1); err != nil {
			t.Fatal(err)
		}
		declined := placeAll(t, ctx, sys, orderMix(8, 3, "SKU-1", "SKU-2", "SKU-3"))
		final := waitTerminal(t, sys, time.Minute, ids(declined)...)
		for _, o := range final {
			if o.Status != harness.StatusCancelled || !strings.Contains(o.Reason, "declined") {
				t.Errorf("order %s: %s (%q), want CANCELLED because the payment was declined", o.ID, o.Status, o.Reason)
			}
		}
		snap := sys.CheckInvariants(t, harness.Expect{Orders: 13, IDs: ids(append(before, declined...)), Deadline: 30 * time.Second})
		if got := snap.CountStatus(harness.StatusCompleted); got != 5 {
			t.Errorf("COMPLETED: got %d, want the 5 placed before the flag", got)
		}
		payments := paymentsByOrder(snap)
		for _, o := range declined {
			if p := payments[o.ID]; p.Status != "DECLINED" {
				t.Errorf("order %s: payment %+v, want DECLINED", o.ID, p)
			}
			wantEvents(t, sys, o.ID,
				[]string{"PaymentDeclined", "CompensationRequested", "StockReleased", "OrderCancelled"},
				[]string{"PaymentCharged", "ShipmentRequested"})
		}
		if snap.Inventory.Reservations["RELEASED"] != len(declined) {
			t.Errorf("reservations: got %v, want %d RELEASED", snap.Inventory.Reservations, len(declined))
		}
	})
}

// Scenario 3. Out of stock → REJECTED, nothing charged: a SKU forced out of
// stock by the fault flag, and a quantity above the real stock.
func TestOutOfStock(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		sys := start(t, queueURL, harness.Config{})
		ctx := timeout(t, 2*time.Minute)
		if err := sys.Client().SetFault(ctx, harness.InventoryService, "inventory_out_of_stock_skus", "SKU-2"); err != nil {
			t.Fatal(err)
		}
		addr := &harness.Address{Name: "Ada", Line1: "1 Loop Road", City: "Berlin", Country: "DE"}
		reqs := []harness.OrderRequest{
			{Items: []harness.Item{{SKU: "SKU-2", Quantity: 1}}, ShippingAddress: addr},                              // forced out
			{Items: []harness.Item{{SKU: "SKU-1", Quantity: 1}, {SKU: "SKU-2", Quantity: 1}}, ShippingAddress: addr}, // one line out
			{Items: []harness.Item{{SKU: "SKU-5", Quantity: 11}}, ShippingAddress: addr},                             // 10 in stock
			{Items: []harness.Item{{SKU: "SKU-1", Quantity: 2}}, ShippingAddress: addr},                              // fine
			{Items: []harness.Item{{SKU: "SKU-5", Quantity: 10}}, ShippingAddress: addr},                             // the whole stock
		}
		orders := placeAll(t, ctx, sys, reqs)
		final := waitTerminal(t, sys, time.Minute, ids(orders)...)
		want := []string{harness.StatusRejected, harness.StatusRejected, harness.StatusRejected, harness.StatusCompleted, harness.StatusCompleted}
		for i, o := range orders {
			if got := final[o.ID]; got.Status != want[i] {
				t.Errorf("order %d (%v): %s (%q), want %s", i, reqs[i].Items, got.Status, got.Reason, want[i])
			}
		}
		snap := sys.CheckInvariants(t, harness.Expect{Orders: len(reqs), IDs: ids(orders), Deadline: 30 * time.Second})
		payments, shipments := paymentsByOrder(snap), shipmentsByOrder(snap)
		for i, o := range orders {
			if want[i] != harness.StatusRejected {
				continue
			}
			if p, ok := payments[o.ID]; ok {
				t.Errorf("rejected order %d: payment %+v, want none (nothing charged)", i, p)
			}
			if sh, ok := shipments[o.ID]; ok {
				t.Errorf("rejected order %d: shipment %+v, want none", i, sh)
			}
			wantEvents(t, sys, o.ID, []string{"StockReservationFailed", "OrderRejected"},
				[]string{"StockReserved", "PaymentRequested", "CompensationRequested"})
		}
		if st := stockBySKU(snap)["SKU-5"]; st.Available != 0 || st.Reserved != 10 {
			t.Errorf("SKU-5: got %+v, want all 10 reserved by the completed order", st)
		}
	})
}

// Scenario 4. Shipping failure → refund + release → CANCELLED.
func TestShippingFailure(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		sys := start(t, queueURL, harness.Config{
			ServiceEnv: map[string]map[string]string{harness.ShippingService: {"SHIPPING_FAILURE_RATE": "1"}},
		})
		ctx := timeout(t, 2*time.Minute)
		orders := placeAll(t, ctx, sys, orderMix(8, 4, "SKU-1", "SKU-2", "SKU-4"))
		final := waitTerminal(t, sys, time.Minute, ids(orders)...)
		for _, o := range final {
			if o.Status != harness.StatusCancelled || !strings.Contains(o.Reason, "shipment failed") {
				t.Errorf("order %s: %s (%q), want CANCELLED because the shipment failed", o.ID, o.Status, o.Reason)
			}
		}
		snap := sys.CheckInvariants(t, harness.Expect{Orders: len(orders), IDs: ids(orders), Deadline: 30 * time.Second})
		payments, shipments := paymentsByOrder(snap), shipmentsByOrder(snap)
		var charges, refunds int
		for _, e := range snap.Ledger {
			switch e.Kind {
			case "charge":
				charges++
			case "refund":
				refunds++
			}
		}
		if charges != len(orders) || refunds != len(orders) {
			t.Errorf("ledger: %d charges and %d refunds, want %d of each", charges, refunds, len(orders))
		}
		for _, o := range orders {
			if p := payments[o.ID]; p.Status != "REFUNDED" {
				t.Errorf("order %s: payment %+v, want REFUNDED", o.ID, p)
			}
			if sh := shipments[o.ID]; sh.Status != "FAILED" {
				t.Errorf("order %s: shipment %+v, want FAILED", o.ID, sh)
			}
			wantEvents(t, sys, o.ID,
				[]string{"PaymentCharged", "ShipmentFailed", "CompensationRequested", "PaymentRefunded", "StockReleased", "OrderCancelled"},
				[]string{"ShipmentScheduled", "OrderCompleted"})
		}
		for _, st := range snap.Inventory.Stock {
			if st.Reserved != 0 || st.Available != st.Initial {
				t.Errorf("stock %s: got %+v, want everything released", st.SKU, st)
			}
		}
	})
}
