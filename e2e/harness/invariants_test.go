package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// errorsTB records the errors a check reports instead of failing the test,
// so that the test can look at them.
type errorsTB struct {
	*testing.T
	errs []string
}

func (r *errorsTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// fakeCatalog is the catalogue of fakeSystem: one SKU of 10 units.
var fakeCatalog = []Product{{SKU: "SKU-1", Name: "Beans", UnitPriceCents: 1500, InitialStock: 10}}

// fakeStock is inventory's GET /state of fakeCatalog, untouched.
const fakeStock = `{"stock": [{"sku": "SKU-1", "available": 10, "reserved": 0, "initial": 10, "restocked": 0}], "reservations": {}, "conserved": true}`

// fakeSystem is a System running fakeCatalog whose services are the given
// handlers, each serving both the API and the admin API of its service.
func fakeSystem(t *testing.T, handlers map[string]http.Handler) *System {
	t.Helper()
	s := &System{t: t, procs: map[string]*Process{}, catalog: fakeCatalog}
	for _, name := range Services {
		mux := http.NewServeMux()
		mux.Handle("GET /outbox", serveJSON(`{"pending": 0}`)) // every fake has forwarded all
		mux.Handle("/", handlers[name])
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		addr := strings.TrimPrefix(srv.URL, "http://")
		s.procs[name] = &Process{name: name, httpAddr: addr, adminAddr: addr}
	}
	s.client = &Client{sys: s}
	return s
}

// idlePaymentAndShipping are the admin APIs of a payment and a shipping
// service that have charged and shipped nothing.
func idlePaymentAndShipping() (payment, shipping *http.ServeMux) {
	payment = http.NewServeMux()
	payment.Handle("GET /state", serveJSON(`{"payments": {}, "consistent": true}`))
	payment.Handle("GET /payments", serveJSON(`[]`))
	payment.Handle("GET /ledger", serveJSON(`[]`))
	payment.Handle("GET /gateway", serveJSON(`[]`))
	shipping = http.NewServeMux()
	shipping.Handle("GET /shipments", serveJSON(`[]`))
	shipping.Handle("GET /carrier", serveJSON(`[]`))
	shipping.Handle("GET /state", serveJSON(`{"shipments": {}}`))
	return payment, shipping
}

func serveJSON(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}
}

// When the wait's deadline cuts a snapshot short, CheckInvariants reports
// the violations of the last complete snapshot, not just the deadline that
// cut the request: here the order service answers one whole snapshot with
// an order stuck PENDING, then inventory hangs in the next one until the
// wait is over.
func TestCheckInvariantsReportsLastCompleteSnapshot(t *testing.T) {
	var complete atomic.Int32 // snapshots served whole: the dead letters are read last
	var cut atomic.Bool       // a later snapshot reached the request that hangs
	stop := make(chan struct{})

	order := http.NewServeMux()
	pending := []Order{{ID: "o-1", Status: StatusPending, Awaiting: []string{"payment"}, PlacedAt: time.Now().UTC()}}
	orders, err := json.Marshal(map[string]any{"orders": pending})
	if err != nil {
		t.Fatal(err)
	}
	order.Handle("GET /orders", serveJSON(string(orders)))
	order.Handle("GET /orders/o-1/events", serveJSON(`{"events": [{"version": 1, "type": "OrderPlaced"}]}`))
	order.Handle("GET /queue/stats", serveJSON(`[]`))
	order.HandleFunc("GET /dlq", func(w http.ResponseWriter, r *http.Request) {
		serveJSON(`[]`)(w, r)
		complete.Add(1)
	})
	inventory := http.NewServeMux()
	inventory.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		if complete.Load() == 0 {
			serveJSON(fakeStock)(w, r)
			return
		}
		cut.Store(true)
		select {
		case <-r.Context().Done(): // the client gave up: its wait is over
		case <-stop:
		}
	})
	payment, shipping := idlePaymentAndShipping()

	s := fakeSystem(t, map[string]http.Handler{
		OrderService: order, InventoryService: inventory, PaymentService: payment, ShippingService: shipping,
	})
	t.Cleanup(func() { close(stop) }) // before the servers close: they wait for their handlers

	rec := &errorsTB{T: t}
	snap := s.CheckInvariants(rec, Expect{Quiet: 2 * time.Second})

	if !cut.Load() {
		t.Fatalf("no snapshot after the first complete one reached the hanging request (complete: %d), want one cut short by the deadline", complete.Load())
	}
	if len(rec.errs) != 1 {
		t.Fatalf("got %d errors %q, want 1", len(rec.errs), rec.errs)
	}
	got := rec.errs[0]
	if want := "order o-1 is PENDING (awaiting [payment]), want a terminal status"; !strings.Contains(got, want) {
		t.Errorf("got error %q, want one naming the violation of the complete snapshot: %q", got, want)
	}
	if strings.Contains(got, "snapshot:") || strings.Contains(got, "deadline exceeded") {
		t.Errorf("got error %q, want the violations found, not the request the deadline cut", got)
	}
	if len(snap.Orders) != 1 || !snap.Inventory.Conserved || !snap.PaymentState.Consistent {
		t.Errorf("got snapshot %+v, want the complete one: 1 order, inventory and payments read", snap)
	}
}

// quietSystem is a fake system with no dead letter, an empty queue and
// the given order list and event streams (by order id); inventory holds
// fakeCatalog's stock untouched, nothing is paid or shipped.
func quietSystem(t *testing.T, orders []Order, streams map[string][]Event) *System {
	t.Helper()
	order := http.NewServeMux()
	list, err := json.Marshal(map[string]any{"orders": orders})
	if err != nil {
		t.Fatal(err)
	}
	order.Handle("GET /orders", serveJSON(string(list)))
	order.HandleFunc("GET /orders/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		evs, ok := streams[r.PathValue("id")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		body, _ := json.Marshal(map[string]any{"events": evs})
		serveJSON(string(body))(w, r)
	})
	order.Handle("GET /queue/stats", serveJSON(`[]`))
	order.Handle("GET /dlq", serveJSON(`[]`))
	inventory := http.NewServeMux()
	inventory.Handle("GET /state", serveJSON(fakeStock))
	payment, shipping := idlePaymentAndShipping()
	return fakeSystem(t, map[string]http.Handler{
		OrderService: order, InventoryService: inventory, PaymentService: payment, ShippingService: shipping,
	})
}

func events(types ...string) []Event {
	out := make([]Event, len(types))
	for i, typ := range types {
		out[i] = Event{Version: i + 1, Type: typ}
	}
	return out
}

// Every scenario's CheckInvariants reads every order's stream and reports
// an effect recorded twice and a second charge, but not a compensation
// sent again or a deadline passing again.
func TestCheckInvariantsReportsEventsRecordedTwice(t *testing.T) {
	finished := time.Now().UTC()
	rejected := func(id string) Order {
		return Order{ID: id, Status: StatusRejected, PlacedAt: finished, FinishedAt: &finished}
	}
	orders := []Order{rejected("clean"), rejected("retried"), rejected("twice"), rejected("extra")}
	s := quietSystem(t, orders, map[string][]Event{
		"clean": events("OrderPlaced", "StockReservationFailed", "OrderRejected"),
		// Repeatable: a deadline passed twice, a compensation was resent.
		"retried": events("OrderPlaced", "StepTimedOut", "CompensationRequested", "StepTimedOut", "CompensationRequested", "StockReservationFailed", "OrderRejected"),
		"twice":   events("OrderPlaced", "StockReservationFailed", "StockReservationFailed", "OrderRejected"),
		"extra":   events("OrderPlaced", "StockReservationFailed", "ExtraChargeDetected", "OrderRejected"),
	})
	rec := &errorsTB{T: t}
	s.CheckInvariants(rec, Expect{Orders: len(orders), Quiet: 5 * time.Second})
	if len(rec.errs) != 1 {
		t.Fatalf("got %d errors %q, want 1 (the event streams)", len(rec.errs), rec.errs)
	}
	got := rec.errs[0]
	for _, want := range []string{"order twice recorded StockReservationFailed twice", "order extra was charged a second time"} {
		if !strings.Contains(got, want) {
			t.Errorf("got error %q, want it to say %q", got, want)
		}
	}
	for _, clean := range []string{"order clean ", "order retried "} {
		if strings.Contains(got, clean) {
			t.Errorf("got error %q, which blames %q: nothing was recorded twice there but a repeatable event", got, clean)
		}
	}
}

// Expect.IDs checks which orders exist, not only how many: one lost and one
// made up is two violations, as is an id acknowledged for two requests.
func TestViolationsOrderIdentity(t *testing.T) {
	finished := time.Now().UTC()
	order := func(id string) Order {
		return Order{ID: id, Status: StatusRejected, PlacedAt: finished, FinishedAt: &finished}
	}
	snap := Snapshot{
		Orders:    []Order{order("a"), order("b"), order("x")},
		Inventory: InventoryState{Stock: []Stock{{SKU: "SKU-1", Available: 10, Initial: 10}}, Conserved: true},
		Catalog:   fakeCatalog,
		PaymentState: PaymentState{
			Payments: map[string]int{}, Consistent: true,
		},
	}
	if v := snap.Violations(Expect{Orders: 3, IDs: []string{"a", "b", "x"}}); len(v) != 0 {
		t.Fatalf("the acknowledged orders exactly: got violations %q, want none", v)
	}
	// The count matches, the identities do not: c was lost, x made up.
	v := snap.Violations(Expect{Orders: 3, IDs: []string{"a", "b", "c"}})
	want := []string{
		"order c was acknowledged but is missing (lost)",
		"order x exists but was never acknowledged to the test (made up or placed twice)",
	}
	if strings.Join(v, "\n") != strings.Join(want, "\n") {
		t.Errorf("one order lost, one made up: got violations %q, want %q", v, want)
	}
	// Two requests acknowledged with one id: one order is lost.
	v = snap.Violations(Expect{IDs: []string{"a", "b", "x", "a"}})
	if len(v) != 1 || !strings.Contains(v[0], "order a was acknowledged for 2 requests") {
		t.Errorf("one id acknowledged twice: got violations %q, want that one", v)
	}
	// An order listed twice.
	snap.Orders = append(snap.Orders, order("b"))
	v = snap.Violations(Expect{IDs: []string{"a", "b", "x"}})
	if len(v) != 1 || !strings.Contains(v[0], "order b is listed 2 times") {
		t.Errorf("an order listed twice: got violations %q, want that one", v)
	}
}

// A service whose outbox still holds messages it committed is not done:
// the queue's depth cannot show them (a late reply on its way).
func TestViolationsOutboxNotEmpty(t *testing.T) {
	snap := Snapshot{
		Inventory:    InventoryState{Stock: []Stock{{SKU: "SKU-1", Available: 10, Initial: 10}}, Conserved: true},
		Catalog:      fakeCatalog,
		PaymentState: PaymentState{Payments: map[string]int{}, Consistent: true},
		Outboxes:     map[string]int64{OrderService: 0, InventoryService: 0, PaymentService: 2, ShippingService: 0},
	}
	want := []string{"outbox: payment holds 2 messages it committed and has not forwarded"}
	if got := snap.Violations(Expect{}); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got violations %q, want %q", got, want)
	}
	snap.Outboxes[PaymentService] = 0
	if got := snap.Violations(Expect{}); len(got) != 0 {
		t.Errorf("every outbox empty: got violations %q, want none", got)
	}
}

// Inventory's stock is checked against the catalogue: a SKU missing (an
// empty stock list included), a SKU started from another initial stock and
// a SKU the catalogue does not list are violations, even when every SKU
// listed is conserved.
func TestViolationsStockAgainstTheCatalogue(t *testing.T) {
	catalog := []Product{
		{SKU: "SKU-1", UnitPriceCents: 1500, InitialStock: 10},
		{SKU: "SKU-2", UnitPriceCents: 999, InitialStock: 5},
	}
	snapshot := func(stock ...Stock) Snapshot {
		return Snapshot{
			Inventory:    InventoryState{Stock: stock, Conserved: true},
			Catalog:      catalog,
			PaymentState: PaymentState{Payments: map[string]int{}, Consistent: true},
		}
	}
	sku1 := Stock{SKU: "SKU-1", Available: 10, Initial: 10}
	sku2 := Stock{SKU: "SKU-2", Available: 5, Initial: 5}
	tests := []struct {
		name string
		snap Snapshot
		want []string
	}{
		{"as catalogued", snapshot(sku1, sku2), nil},
		{"no stock at all", snapshot(), []string{
			"stock SKU-1: missing from inventory, whose catalogue starts it at 10",
			"stock SKU-2: missing from inventory, whose catalogue starts it at 5",
		}},
		{"one SKU missing", snapshot(sku1), []string{"stock SKU-2: missing from inventory, whose catalogue starts it at 5"}},
		{"another initial stock", snapshot(sku1, Stock{SKU: "SKU-2", Available: 7, Initial: 7}), []string{
			"stock SKU-2: initial 7, but the catalogue starts it at 5",
		}},
		{"a SKU not catalogued", snapshot(sku1, sku2, Stock{SKU: "SKU-9", Available: 1, Initial: 1}), []string{
			"stock SKU-9: inventory holds a SKU the catalogue does not list: {SKU:SKU-9 Available:1 Reserved:0 Initial:1 Restocked:0}",
		}},
		{"no catalogue", Snapshot{
			Inventory:    InventoryState{Stock: []Stock{sku1}, Conserved: true},
			PaymentState: PaymentState{Payments: map[string]int{}, Consistent: true},
		}, []string{
			"no catalogue to check inventory's stock against",
			"stock SKU-1: inventory holds a SKU the catalogue does not list: {SKU:SKU-1 Available:10 Reserved:0 Initial:10 Restocked:0}",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.snap.Violations(Expect{})
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got violations %q, want %q", got, tt.want)
			}
		})
	}
}

// The providers' books are compared with payment's and shipping's records:
// a second authorization or booking, an effect left standing behind a
// compensation, a charge or booking not on record (even one since undone),
// and an effect for an unknown order are violations.
func TestProviderViolations(t *testing.T) {
	orders := map[string]Order{"o": {ID: "o"}}
	charged := Payment{OrderID: "o", PaymentID: "pay_1", AmountCents: 500, Status: "CHARGED"}
	scheduled := Shipment{OrderID: "o", ShipmentID: "shp_1", Status: "SCHEDULED"}
	charge := ProviderRecord{OrderID: "o", Outcome: "ACCEPTED", Reference: "pay_1", AmountCents: 500, Requests: 1}
	booking := ProviderRecord{OrderID: "o", Outcome: "ACCEPTED", Reference: "shp_1", Requests: 1}
	refunded := charge
	refunded.Cancelled = true
	withdrawn := booking
	withdrawn.Cancelled = true
	tests := []struct {
		name      string
		payment   *Payment
		shipment  *Shipment
		gateway   []ProviderRecord
		carrier   []ProviderRecord
		wantParts []string
	}{
		{"books agree, requests repeated", &charged, &scheduled,
			[]ProviderRecord{{OrderID: "o", Outcome: "ACCEPTED", Reference: "pay_1", AmountCents: 500, Requests: 3}}, []ProviderRecord{booking}, nil},
		// The charge's local transaction lost, the refund recorded what the
		// gateway gave back.
		{"charged, then refunded at the gateway, with the refund's local transaction first",
			&Payment{OrderID: "o", PaymentID: "pay_1", AmountCents: 500, Status: "REFUNDED"}, nil, []ProviderRecord{refunded}, nil, nil},
		{"charged and refunded at the gateway, voided in payment", &Payment{OrderID: "o", Status: "VOIDED"}, nil,
			[]ProviderRecord{refunded}, nil, []string{"the gateway charged pay_1 (refunded: true), payment has no record of it"}},
		{"charged and refunded at the gateway, no payment at all", nil, nil,
			[]ProviderRecord{refunded}, nil, []string{"the gateway charged pay_1 (refunded: true), payment has no record of it"}},
		{"booked, then withdrawn at the carrier, with the cancellation's local transaction first", nil,
			&Shipment{OrderID: "o", ShipmentID: "shp_1", Status: "CANCELLED"}, nil, []ProviderRecord{withdrawn}, nil},
		{"booked and withdrawn at the carrier, voided in shipping", nil, &Shipment{OrderID: "o", Status: "VOIDED"},
			nil, []ProviderRecord{withdrawn}, []string{"the carrier booked shp_1 (withdrawn: true), shipping has no record of it"}},
		{"a charge refused at the gateway after the refund voided it there", &Payment{OrderID: "o", Status: "DECLINED"}, nil,
			[]ProviderRecord{{OrderID: "o", Outcome: "VOIDED", Requests: 1, Cancels: 1}}, nil, nil},
		{"another amount", &charged, &scheduled,
			[]ProviderRecord{{OrderID: "o", Outcome: "ACCEPTED", Reference: "pay_1", AmountCents: 499, Requests: 1}}, []ProviderRecord{booking},
			[]string{"the gateway charged 499 cents, payment recorded 500"}},
		{"nothing anywhere", nil, nil, nil, nil, nil},
		{"refunded on both sides", &Payment{OrderID: "o", PaymentID: "pay_1", Status: "REFUNDED"}, nil, []ProviderRecord{refunded}, nil, nil},
		{"voided first on both sides", &Payment{OrderID: "o", Status: "VOIDED"}, nil,
			[]ProviderRecord{{OrderID: "o", Outcome: "VOIDED", Requests: 1, Cancels: 1}}, nil, nil},
		{"a second authorization", &charged, &scheduled,
			[]ProviderRecord{{OrderID: "o", Outcome: "ACCEPTED", Reference: "pay_2", Requests: 2}}, []ProviderRecord{booking},
			[]string{"the gateway charged pay_2, payment recorded pay_1"}},
		{"a late charge left standing after the refund came first", &Payment{OrderID: "o", Status: "VOIDED"}, nil,
			[]ProviderRecord{charge}, nil, []string{"holds a charge: true"}},
		{"refunded in the ledger, not at the gateway", &Payment{OrderID: "o", PaymentID: "pay_1", Status: "REFUNDED"}, nil,
			[]ProviderRecord{charge}, nil, []string{"holds a charge: true"}},
		{"charged in the ledger, unknown to the gateway", &charged, &scheduled, nil, []ProviderRecord{booking},
			[]string{"holds a charge: false"}},
		{"a booking left standing behind a cancelled shipment", nil, &Shipment{OrderID: "o", ShipmentID: "shp_1", Status: "CANCELLED"},
			nil, []ProviderRecord{booking}, []string{"holds a booking: true"}},
		{"a second booking", nil, &scheduled, nil,
			[]ProviderRecord{{OrderID: "o", Outcome: "ACCEPTED", Reference: "shp_2", Requests: 2}},
			[]string{"the carrier booked shp_2, shipping recorded shp_1"}},
		{"a charge for an unknown order", nil, nil,
			[]ProviderRecord{{OrderID: "ghost", Outcome: "ACCEPTED", Reference: "pay_9", Requests: 1}}, nil,
			[]string{"gateway holds pay_9 for order ghost, which the order service does not know"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payments, shipments := map[string]Payment{}, map[string]Shipment{}
			if tt.payment != nil {
				payments["o"] = *tt.payment
			}
			if tt.shipment != nil {
				shipments["o"] = *tt.shipment
			}
			got := providerViolations(orders, payments, shipments, tt.gateway, tt.carrier)
			if len(got) != len(tt.wantParts) {
				t.Fatalf("got violations %q, want %d containing %q", got, len(tt.wantParts), tt.wantParts)
			}
			for i, part := range tt.wantParts {
				if !strings.Contains(got[i], part) {
					t.Errorf("violation %d: got %q, want it to contain %q", i, got[i], part)
				}
			}
		})
	}
}

// The ledger records every money movement at the gateway, a charge taken
// and given back before payment recorded it included.
func TestGatewayLedgerViolations(t *testing.T) {
	charge := ProviderRecord{OrderID: "o", Outcome: "ACCEPTED", Reference: "pay_1", AmountCents: 500, Requests: 1}
	refunded := charge
	refunded.Cancelled, refunded.Cancels = true, 1
	charged := LedgerEntry{OrderID: "o", PaymentID: "pay_1", Kind: "charge", AmountCents: 500}
	refund := LedgerEntry{OrderID: "o", PaymentID: "pay_1", Kind: "refund", AmountCents: -500}
	tests := []struct {
		name    string
		gateway []ProviderRecord
		ledger  []LedgerEntry
		want    []string
	}{
		{"charged", []ProviderRecord{charge}, []LedgerEntry{charged}, nil},
		{"charged and refunded", []ProviderRecord{refunded}, []LedgerEntry{charged, refund}, nil},
		{"declined and voided: no money moved", []ProviderRecord{
			{OrderID: "o", Outcome: "REFUSED", Requests: 1}, {OrderID: "v", Outcome: "VOIDED", Cancels: 1}}, nil, nil},
		{"charged and refunded, neither in the ledger", []ProviderRecord{refunded}, nil, []string{
			"order o: the gateway charged pay_1 500 cents, the ledger records a charge of 0",
			"order o: the gateway refunded pay_1 500 cents, the ledger records a refund of 0",
		}},
		{"refunded, only the charge in the ledger", []ProviderRecord{refunded}, []LedgerEntry{charged},
			[]string{"order o: the gateway refunded pay_1 500 cents, the ledger records a refund of 0"}},
		{"charged under another payment id in the ledger", []ProviderRecord{charge},
			[]LedgerEntry{{OrderID: "o", PaymentID: "pay_2", Kind: "charge", AmountCents: 500}},
			[]string{"order o: the gateway charged pay_1 500 cents, the ledger records a charge of 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := gatewayLedgerViolations(tt.gateway, tt.ledger)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got violations %q, want %q", got, tt.want)
			}
		})
	}
}
