package inprocess_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
	"github.com/orderflow/orderflow/e2e/inprocess"
)

// outcome is how an order must end, at every service. A status list
// accepts any of its statuses; "" stands for no record at that service.
type outcome struct {
	status      string // the order's terminal status
	reason      string // a part of the order's reason
	reservation []string
	payment     []string
	shipment    []string
}

// state is what every service holds, read one service after the other.
type state struct {
	orders       map[string]harness.Order
	stock        []harness.Stock
	reservations map[string]string // order id → reservation status
	payments     map[string]harness.Payment
	paymentState harness.PaymentState
	ledger       []harness.LedgerEntry
	shipments    map[string]harness.Shipment
	deadLetters  []harness.DeadLetter
}

// listLimit is a page larger than any test's lists.
const listLimit = "?limit=10000"

// read reads the state of the system for the orders ids.
func (c *client) read(ids []string) (state, error) {
	s := state{reservations: map[string]string{}, payments: map[string]harness.Payment{}, shipments: map[string]harness.Shipment{}}
	var err error
	if s.orders, err = c.orders(); err != nil {
		return s, err
	}
	var payments []harness.Payment
	var shipments []harness.Shipment
	for _, get := range []struct {
		service, path string
		out           any
	}{
		{inprocess.Inventory, "/stock", &s.stock},
		{inprocess.Payment, "/payments" + listLimit, &payments},
		{inprocess.Payment, "/ledger" + listLimit, &s.ledger},
		{inprocess.Payment, "/state", &s.paymentState},
		{inprocess.Shipping, "/shipments" + listLimit, &shipments},
		{inprocess.Order, "/dlq", &s.deadLetters},
	} {
		if code, err := c.do(http.MethodGet, c.admin(get.service, get.path), nil, get.out); err != nil || code != http.StatusOK {
			return s, fmt.Errorf("GET %s %s: got %d (%v), want 200", get.service, get.path, code, err)
		}
	}
	for _, p := range payments {
		s.payments[p.OrderID] = p
	}
	for _, sh := range shipments {
		s.shipments[sh.OrderID] = sh
	}
	for _, id := range ids {
		var r struct{ Status string }
		code, err := c.do(http.MethodGet, c.admin(inprocess.Inventory, "/reservations/"+id), nil, &r)
		if err != nil || (code != http.StatusOK && code != http.StatusNotFound) {
			return s, fmt.Errorf("GET reservation of %s: got %d (%v), want 200 or 404", id, code, err)
		}
		s.reservations[id] = r.Status
	}
	return s, nil
}

// checkInvariants waits (up to 30s) until the quiet system satisfies
// the invariants of docs/design.md §4 and every order its outcome, and reports
// what it does not as test errors. restocked is what the test added to
// the stock.
func (c *client) checkInvariants(t *testing.T, want map[string]outcome, restocked map[string]int) {
	t.Helper()
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	eventually(t, 30*time.Second, func() []string {
		s, err := c.read(ids)
		if err != nil {
			return []string{err.Error()}
		}
		return s.violations(ids, want, restocked)
	})
}

// violations lists how s breaks docs/design.md §4 or the orders' outcomes.
func (s state) violations(ids []string, want map[string]outcome, restocked map[string]int) []string {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	oneOf := func(id, what, got string, want []string) {
		if !slices.Contains(want, got) {
			bad("order %s %s: got %q, want one of %q", id, what, got, want)
		}
	}

	// Every order terminal, as its scenario says, at every service.
	if len(s.orders) != len(ids) {
		bad("orders: got %d, want %d (none lost, none made up)", len(s.orders), len(ids))
	}
	held := map[string]int{}
	charges := map[string]int{}
	net := map[string]int64{}
	for _, e := range s.ledger {
		if e.Kind == "charge" {
			charges[e.OrderID]++
		}
		net[e.OrderID] += e.AmountCents
	}
	for _, id := range ids {
		o, w := s.orders[id], want[id]
		switch {
		case !harness.Terminal(o.Status):
			bad("order %s: got %q (step %s, awaiting %v), want terminal %s", id, o.Status, o.SagaStep, o.Awaiting, w.status)
			continue
		case o.Status != w.status || !strings.Contains(o.Reason, w.reason):
			bad("order %s: got %s (%q), want %s (%q)", id, o.Status, o.Reason, w.status, w.reason)
		}
		oneOf(id, "reservation", s.reservations[id], w.reservation)
		oneOf(id, "payment", s.payments[id].Status, w.payment)
		oneOf(id, "shipment", s.shipments[id].Status, w.shipment)
		// At most one charge per order; every charge of a cancelled or
		// rejected order refunded; a completed order charged its total.
		if charges[id] > 1 {
			bad("order %s charges: got %d, want at most 1", id, charges[id])
		}
		var wantNet int64
		if o.Status == harness.StatusCompleted {
			wantNet = o.TotalCents
			for _, it := range o.Items {
				held[it.SKU] += it.Quantity
			}
		}
		if net[id] != wantNet {
			bad("order %s (%s) ledger net: got %d cents, want %d", id, o.Status, net[id], wantNet)
		}
	}
	if ps := s.paymentState; !ps.Consistent || ps.OrdersChargedTwice != 0 {
		bad("payment state: got %+v, want consistent with no order charged twice", ps)
	}

	// Stock never negative and conserved: available + reserved = initial +
	// restocked − shipped (shipments are never dispatched here, so what is
	// shipped stays reserved: exactly what the completed orders hold).
	// Every item the orders hold or that was restocked is listed: an empty
	// or partial listing would pass the checks below vacuously.
	listed := map[string]bool{}
	for _, st := range s.stock {
		listed[st.SKU] = true
	}
	needed := maps.Clone(held)
	for sku := range restocked {
		needed[sku] = 1
	}
	for _, sku := range slices.Sorted(maps.Keys(needed)) {
		if !listed[sku] {
			bad("stock %s: missing from the stock listing (%d items), want it listed", sku, len(s.stock))
		}
	}
	for _, st := range s.stock {
		if st.Available < 0 || st.Reserved < 0 {
			bad("stock %s: got available %d and reserved %d, want neither negative", st.SKU, st.Available, st.Reserved)
		}
		if got, want := st.Available+st.Reserved, st.Initial+st.Restocked; got != want {
			bad("stock %s available + reserved: got %d, want initial + restocked = %d", st.SKU, got, want)
		}
		if st.Restocked != restocked[st.SKU] {
			bad("stock %s restocked: got %d, want %d", st.SKU, st.Restocked, restocked[st.SKU])
		}
		if st.Reserved != held[st.SKU] {
			bad("stock %s reserved: got %d, want %d (what the completed orders hold)", st.SKU, st.Reserved, held[st.SKU])
		}
	}
	if len(s.deadLetters) != 0 {
		dl := s.deadLetters[0]
		bad("dead letters: got %d (first %s for %s: %s), want 0", len(s.deadLetters), dl.Topic, dl.ConsumerGroup, dl.LastError)
	}
	return v
}
