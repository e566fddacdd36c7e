package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/services/inventory/internal/domain"
)

func (h *harness) stock(sku string) domain.Stock {
	h.t.Helper()
	var all []domain.Stock
	if code := h.getJSON("/stock", &all); code != 200 {
		h.t.Fatalf("GET /stock: got %d, want 200", code)
	}
	for _, s := range all {
		if s.SKU == sku {
			return s
		}
	}
	h.t.Fatalf("GET /stock: no %s", sku)
	return domain.Stock{}
}

func items(kv ...any) []contracts.Item {
	var out []contracts.Item
	for i := 0; i < len(kv); i += 2 {
		out = append(out, contracts.Item{SKU: kv[i].(string), Quantity: kv[i+1].(int)})
	}
	return out
}

func TestReserveReleaseAndDuplicates(t *testing.T) {
	h := start(t)
	before := h.stock("SKU-1")

	id := h.publish(contracts.ReserveStock{OrderID: "o-1", Items: items("SKU-1", 2, "SKU-3", 1)}, "")
	m, msg := h.next()
	got, ok := m.(contracts.StockReserved)
	if !ok || got.OrderID != "o-1" || len(got.Items) != 2 {
		t.Fatalf("event: got %#v, want StockReserved for o-1 with 2 items", m)
	}
	h.sameTrace(msg)
	if c := msg.Metadata.Get(contracts.MetadataCausationID); c != id {
		t.Errorf("causation_id: got %q, want %q", c, id)
	}
	if c := msg.Metadata.Get(contracts.MetadataCorrelationID); c != "o-1" {
		t.Errorf("correlation_id: got %q, want o-1", c)
	}
	if s := h.stock("SKU-1"); s.Available != before.Available-2 || s.Reserved != 2 {
		t.Errorf("SKU-1 after reserve: got %+v, want available %d reserved 2", s, before.Available-2)
	}

	// The same message again (a redelivery) is processed once.
	h.publish(contracts.ReserveStock{OrderID: "o-1", Items: items("SKU-1", 2, "SKU-3", 1)}, id)
	// A new reserve for the same order repeats the answer without taking more.
	h.publish(contracts.ReserveStock{OrderID: "o-1", Items: items("SKU-1", 2, "SKU-3", 1)}, "")
	if m, _ := h.next(); m.MessageType() != contracts.TypeStockReserved {
		t.Errorf("repeated reserve: got %s, want StockReserved", m.MessageType())
	}
	h.quiet(200 * time.Millisecond)
	if s := h.stock("SKU-1"); s.Reserved != 2 {
		t.Errorf("SKU-1 after duplicates: got reserved %d, want 2", s.Reserved)
	}

	// Release gives everything back; twice is the same answer.
	for range 2 {
		h.publish(contracts.ReleaseStock{OrderID: "o-1", Items: items("SKU-1", 2, "SKU-3", 1)}, "")
		m, _ := h.next()
		rel, ok := m.(contracts.StockReleased)
		if !ok || len(rel.Items) != 2 {
			t.Fatalf("release: got %#v, want StockReleased with 2 items", m)
		}
	}
	if s := h.stock("SKU-1"); s != before {
		t.Errorf("SKU-1 after release: got %+v, want %+v", s, before)
	}
}

func TestReservationFailures(t *testing.T) {
	h := start(t)

	h.publish(contracts.ReserveStock{OrderID: "o-big", Items: items("SKU-1", 1, "SKU-5", 1000)}, "")
	m, _ := h.next()
	f, ok := m.(contracts.StockReservationFailed)
	if !ok || len(f.Unavailable) != 1 || f.Unavailable[0].SKU != "SKU-5" {
		t.Fatalf("too much: got %#v, want StockReservationFailed naming SKU-5", m)
	}
	if s := h.stock("SKU-1"); s.Reserved != 0 {
		t.Errorf("all-or-nothing: SKU-1 reserved %d, want 0", s.Reserved)
	}

	// A release before the reserve leaves a tombstone.
	h.publish(contracts.ReleaseStock{OrderID: "o-late", Items: items("SKU-1", 1)}, "")
	if m, _ := h.next(); m.MessageType() != contracts.TypeStockReleased || len(m.(contracts.StockReleased).Items) != 0 {
		t.Fatalf("release of nothing: got %#v, want StockReleased without items", m)
	}
	h.publish(contracts.ReserveStock{OrderID: "o-late", Items: items("SKU-1", 1)}, "")
	if m, _ := h.next(); m.MessageType() != contracts.TypeStockReservationFailed {
		t.Fatalf("late reserve: got %#v, want StockReservationFailed", m)
	}

	// Forced out of stock through the admin API.
	if code := h.send(http.MethodPut, "/faults/"+faults.InventoryOutOfStockSKUs, `{"value":"SKU-2"}`); code != 200 {
		t.Fatalf("PUT fault: got %d, want 200", code)
	}
	h.publish(contracts.ReserveStock{OrderID: "o-2", Items: items("SKU-2", 1)}, "")
	if m, _ := h.next(); m.MessageType() != contracts.TypeStockReservationFailed {
		t.Fatalf("forced out of stock: got %#v, want StockReservationFailed", m)
	}

	var st struct {
		Conserved    bool           `json:"conserved"`
		Reservations map[string]int `json:"reservations"`
	}
	h.getJSON("/state", &st)
	if !st.Conserved || st.Reservations["FAILED"] != 2 || st.Reservations["TOMBSTONE"] != 1 {
		t.Errorf("state: got %+v, want conserved with 2 FAILED and 1 TOMBSTONE", st)
	}
}

func TestUndecodableMessageIsDeadLettered(t *testing.T) {
	h := start(t)
	id := h.publishRaw(contracts.TopicInventoryCommands, contracts.TypeReserveStock)
	h.waitDeadLetter(contracts.TopicInventoryCommands, id, 1)
	h.quiet(100 * time.Millisecond)
}

func TestCrashPoints(t *testing.T) {
	for _, flag := range []string{faults.CrashMidHandler, faults.CrashAfterCommit} {
		t.Run(flag, func(t *testing.T) {
			h := start(t)
			if err := h.reg.Set(flag, "true"); err != nil {
				t.Fatal(err)
			}
			h.publish(contracts.ReserveStock{OrderID: "o-crash", Items: items("SKU-4", 3)}, "")
			if m, _ := h.next(); m.MessageType() != contracts.TypeStockReserved {
				t.Fatalf("event: got %s, want StockReserved", m.MessageType())
			}
			h.quiet(300 * time.Millisecond)
			if got := h.exits.Load(); got != 1 {
				t.Errorf("exits: got %d, want 1", got)
			}
			if s := h.stock("SKU-4"); s.Reserved != 3 {
				t.Errorf("SKU-4 reserved: got %d, want 3 (once)", s.Reserved)
			}
		})
	}
}

func TestPoisonAndRestock(t *testing.T) {
	h := start(t)
	h.poison()

	if code := h.send(http.MethodPost, "/stock/SKU-5/restock", `{"quantity":5}`); code != 200 {
		t.Fatalf("restock: got %d, want 200", code)
	}
	if s := h.stock("SKU-5"); s.Restocked != 5 || !s.Conserved() {
		t.Errorf("after restock: got %+v, want restocked 5 and conserved", s)
	}
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{"/stock/NOPE/restock", `{"quantity":5}`, 404},
		{"/stock/SKU-5/restock", `{"quantity":0}`, 400},
		{"/stock/SKU-5/restock", `{}`, 400},
	} {
		if code := h.send(http.MethodPost, tc.path, tc.body); code != tc.want {
			t.Errorf("POST %s %s: got %d, want %d", tc.path, tc.body, code, tc.want)
		}
	}
	if code := h.getJSON("/reservations/none", &struct{}{}); code != 404 {
		t.Errorf("GET unknown reservation: got %d, want 404", code)
	}
	var ok struct{ Status string }
	if code := h.getJSON("/readyz", &ok); code != 200 || ok.Status != "ready" {
		t.Errorf("readyz: got %d %+v, want 200 ready", code, ok)
	}
}
