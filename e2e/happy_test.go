package e2e

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// Scenario 1. N orders → all COMPLETED; stock, charges and shipments match
// exactly; the trace of an order spans all four services.
func TestHappyPath(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		sys := start(t, queueURL, harness.Config{Traces: true})
		const n = 20
		reqs := orderMix(n, 1, "SKU-1", "SKU-2", "SKU-3", "SKU-4")
		orders := placeAll(t, timeout(t, time.Minute), sys, reqs)
		final := waitTerminal(t, sys, 60*time.Second, ids(orders)...)
		if got := statuses(final); got[harness.StatusCompleted] != n {
			t.Fatalf("statuses: got %v, want all %d COMPLETED", got, n)
		}
		snap := sys.CheckInvariants(t, harness.Expect{Orders: n, IDs: ids(orders), Deadline: 30 * time.Second})

		// Exactly: stock down by what was ordered, one charge of the total
		// and one shipment per order. What to expect comes from the
		// requests and the catalogue's prices, not from the order API.
		price := map[string]int64{}
		for _, p := range sys.Catalog() {
			price[p.SKU] = p.UnitPriceCents
		}
		want := map[string]int{}
		var cents int64
		for i, req := range reqs {
			var total int64
			for _, it := range req.Items {
				want[it.SKU] += it.Quantity
				total += int64(it.Quantity) * price[it.SKU]
			}
			cents += total
			if got := final[orders[i].ID].TotalCents; got != total {
				t.Errorf("order %d (%v): total %d cents, want %d from the catalogue", i, req.Items, got, total)
			}
		}
		for _, p := range sys.Catalog() {
			st := stockBySKU(snap)[p.SKU]
			if st.Available != p.InitialStock-want[p.SKU] || st.Reserved != want[p.SKU] {
				t.Errorf("stock %s: got %+v, want %d available and %d reserved", p.SKU, st, p.InitialStock-want[p.SKU], want[p.SKU])
			}
		}
		if snap.PaymentState.ChargedCents != cents || snap.PaymentState.RefundedCents != 0 || len(snap.Ledger) != n {
			t.Errorf("payments: got %+v with %d ledger entries, want %d cents charged in %d charges, nothing refunded",
				snap.PaymentState, len(snap.Ledger), cents, n)
		}
		if len(snap.Shipments) != n {
			t.Errorf("shipments: got %d, want %d", len(snap.Shipments), n)
		}
		checkCompletedTrace(t, sys, final[orders[0].ID])
	})
}
