package service_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/pkg/servicehost/hosttest"
	"github.com/orderflow/orderflow/services/inventory/internal/domain"
	"github.com/orderflow/orderflow/services/inventory/service"
)

// harness is the service running in hosttest's harness, plus the helpers
// below.
type harness struct{ *hosttest.Harness }

// start runs the inventory service on a fresh queue and database.
func start(t *testing.T) harness {
	return harness{hosttest.Start(t, hosttest.Config{Name: service.Name, Events: contracts.TopicInventoryEvents,
		New: func(ctx context.Context, cfg servicehost.Config) (*servicehost.Host, error) {
			return service.New(ctx, service.Config{Config: cfg})
		}})}
}

func (h harness) stock(sku string) domain.Stock {
	h.T.Helper()
	var all []domain.Stock
	h.GetOK("/stock", &all)
	for _, s := range all {
		if s.SKU == sku {
			return s
		}
	}
	h.T.Fatalf("GET /stock: no %s", sku)
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

	id := h.Publish(contracts.ReserveStock{OrderID: "o-1", Items: items("SKU-1", 2, "SKU-3", 1)}, "")
	m, msg := h.Next()
	got, ok := m.(contracts.StockReserved)
	if !ok || got.OrderID != "o-1" || len(got.Items) != 2 {
		t.Fatalf("event: got %#v, want StockReserved for o-1 with 2 items", m)
	}
	h.SameTrace(msg)
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
	h.Publish(contracts.ReserveStock{OrderID: "o-1", Items: items("SKU-1", 2, "SKU-3", 1)}, id)
	// A new reserve for the same order repeats the answer without taking more.
	h.Publish(contracts.ReserveStock{OrderID: "o-1", Items: items("SKU-1", 2, "SKU-3", 1)}, "")
	if m, _ := h.Next(); m.MessageType() != contracts.TypeStockReserved {
		t.Errorf("repeated reserve: got %s, want StockReserved", m.MessageType())
	}
	h.Quiet(200 * time.Millisecond)
	if s := h.stock("SKU-1"); s.Reserved != 2 {
		t.Errorf("SKU-1 after duplicates: got reserved %d, want 2", s.Reserved)
	}

	// Release gives everything back; twice is the same answer.
	for range 2 {
		h.Publish(contracts.ReleaseStock{OrderID: "o-1", Items: items("SKU-1", 2, "SKU-3", 1)}, "")
		m, _ := h.Next()
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

	h.Publish(contracts.ReserveStock{OrderID: "o-big", Items: items("SKU-1", 1, "SKU-5", 1000)}, "")
	m, _ := h.Next()
	f, ok := m.(contracts.StockReservationFailed)
	if !ok || len(f.Unavailable) != 1 || f.Unavailable[0].SKU != "SKU-5" {
		t.Fatalf("too much: got %#v, want StockReservationFailed naming SKU-5", m)
	}
	if s := h.stock("SKU-1"); s.Reserved != 0 {
		t.Errorf("all-or-nothing: SKU-1 reserved %d, want 0", s.Reserved)
	}

	// A release before the reserve leaves a tombstone.
	h.Publish(contracts.ReleaseStock{OrderID: "o-late", Items: items("SKU-1", 1)}, "")
	if m, _ := h.Next(); m.MessageType() != contracts.TypeStockReleased || len(m.(contracts.StockReleased).Items) != 0 {
		t.Fatalf("release of nothing: got %#v, want StockReleased without items", m)
	}
	h.Publish(contracts.ReserveStock{OrderID: "o-late", Items: items("SKU-1", 1)}, "")
	if m, _ := h.Next(); m.MessageType() != contracts.TypeStockReservationFailed {
		t.Fatalf("late reserve: got %#v, want StockReservationFailed", m)
	}

	// Forced out of stock through the admin API.
	if code := h.Send(http.MethodPut, "/faults/"+faults.InventoryOutOfStockSKUs, `{"value":"SKU-2"}`); code != 200 {
		t.Fatalf("PUT fault: got %d, want 200", code)
	}
	h.Publish(contracts.ReserveStock{OrderID: "o-2", Items: items("SKU-2", 1)}, "")
	if m, _ := h.Next(); m.MessageType() != contracts.TypeStockReservationFailed {
		t.Fatalf("forced out of stock: got %#v, want StockReservationFailed", m)
	}

	var st struct {
		Conserved    bool           `json:"conserved"`
		Reservations map[string]int `json:"reservations"`
	}
	h.GetJSON("/state", &st)
	if !st.Conserved || st.Reservations["FAILED"] != 2 || st.Reservations["TOMBSTONE"] != 1 {
		t.Errorf("state: got %+v, want conserved with 2 FAILED and 1 TOMBSTONE", st)
	}
}

func TestUndecodableMessageIsDeadLettered(t *testing.T) {
	h := start(t)
	id := h.PublishRaw(contracts.TopicInventoryCommands, contracts.TypeReserveStock)
	h.WaitDeadLetter(contracts.TopicInventoryCommands, id, 1)
	h.Quiet(100 * time.Millisecond)
}

// The order service's poison fault publishes servicedb.PoisonMessage as a
// ReserveStock onto inventory.commands: inventory dead-letters it at once.
func TestOrderPoisonIsDeadLettered(t *testing.T) {
	h := start(t)
	msg := servicedb.PoisonMessage(contracts.TypeReserveStock)
	if err := h.Queue.Publisher().Publish(contracts.TopicInventoryCommands, msg); err != nil {
		t.Fatal(err)
	}
	h.WaitDeadLetter(contracts.TopicInventoryCommands, msg.UUID, 1)
	h.Quiet(100 * time.Millisecond)
}

func TestCrashPoints(t *testing.T) {
	for _, flag := range []string{faults.CrashMidHandler, faults.CrashAfterCommit} {
		t.Run(flag, func(t *testing.T) {
			h := start(t)
			h.CrashOnce(flag, contracts.ReserveStock{OrderID: "o-crash", Items: items("SKU-4", 3)}, contracts.TypeStockReserved)
			if s := h.stock("SKU-4"); s.Reserved != 3 {
				t.Errorf("SKU-4 reserved: got %d, want 3 (once)", s.Reserved)
			}
		})
	}
}

// A restock sent again with its Idempotency-Key (its answer was lost)
// adds nothing and is answered as a replay; the same key with another
// quantity or another SKU is refused with a 422, as POST /orders refuses a
// key reused with another body, and adds nothing; a restock that is not
// valid is refused as such (quantity 0: 400, an unknown SKU: 404)
// whatever its key, as POST /orders refuses an invalid order with 422
// whatever its key; a malformed key is a 400 and adds nothing.
func TestRestockWithAnIdempotencyKeyHappensOnce(t *testing.T) {
	h := start(t)
	restock := func(sku, body, key string) (int, bool) {
		t.Helper()
		header := http.Header{}
		if key != "" {
			header.Set("Idempotency-Key", key)
		}
		code, got := h.SendWithHeader(http.MethodPost, "/stock/"+sku+"/restock", body, header)
		return code, got.Get("Idempotent-Replayed") == "true"
	}
	steps := []struct {
		sku, body, key string
		wantCode       int
		wantReplayed   bool
		wantRestocked  int // of SKU-5
	}{
		{"SKU-5", `{"quantity":5}`, "k-1", 200, false, 5},
		{"SKU-5", `{"quantity":5}`, "k-1", 200, true, 5},
		{"SKU-5", `{"quantity":3}`, "k-1", 422, false, 5},
		{"SKU-5", `{"quantity":7}`, "k-1", 422, false, 5},
		{"SKU-4", `{"quantity":5}`, "k-1", 422, false, 5},
		{"SKU-5", `{"quantity":5}`, "k-1", 200, true, 5}, // still the first restock's
		{"SKU-5", `{"quantity":0}`, "k-1", 400, false, 5},
		{"NOPE", `{"quantity":5}`, "k-1", 404, false, 5},
		{"SKU-5", `{"quantity":-3}`, "k-1", 400, false, 5},
		{"SKU-5", `{"quantity":5}`, "k-2", 200, false, 10},
		{"SKU-5", `{"quantity":5}`, "bad\tkey", 400, false, 10},
		{"SKU-5", `{"quantity":5}`, "", 200, false, 15},
		{"SKU-5", `{"quantity":5}`, "", 200, false, 20},
	}
	for i, st := range steps {
		code, replayed := restock(st.sku, st.body, st.key)
		if code != st.wantCode || replayed != st.wantReplayed {
			t.Errorf("step %d (%s %s, key %q): got %d replayed=%v, want %d replayed=%v", i, st.sku, st.body, st.key, code, replayed, st.wantCode, st.wantReplayed)
		}
		if s := h.stock("SKU-5"); s.Restocked != st.wantRestocked || !s.Conserved() {
			t.Errorf("step %d (%s %s, key %q): got SKU-5 restocked %d (%+v), want %d and conserved", i, st.sku, st.body, st.key, s.Restocked, s, st.wantRestocked)
		}
	}
	if s := h.stock("SKU-4"); s.Restocked != 0 {
		t.Errorf("SKU-4 after the refused restock: got restocked %d, want 0", s.Restocked)
	}
}

// With crash_mid_handler on, a restock sent with an Idempotency-Key (as
// the console sends every one) and its retry go through and inventory
// stays up: the fault is the message handlers'.
func TestCrashMidHandlerSparesRestocks(t *testing.T) {
	h := start(t)
	if err := h.Faults.Set(faults.CrashMidHandler, "true"); err != nil {
		t.Fatal(err)
	}
	header := http.Header{}
	header.Set("Idempotency-Key", "console-1")
	for i, want := range []int{5, 5} { // the retry adds nothing
		if code, _ := h.SendWithHeader(http.MethodPost, "/stock/SKU-5/restock", `{"quantity":5}`, header); code != 200 {
			t.Errorf("restock %d: got %d, want 200", i, code)
		}
		if got := h.Exits(); got != 0 {
			t.Fatalf("restock %d: got %d exits, want 0", i, got)
		}
		if s := h.stock("SKU-5"); s.Restocked != want {
			t.Errorf("restock %d: got restocked %d, want %d", i, s.Restocked, want)
		}
	}
}

func TestPoisonAndRestock(t *testing.T) {
	h := start(t)
	h.Poison()

	if code := h.Send(http.MethodPost, "/stock/SKU-5/restock", `{"quantity":5}`); code != 200 {
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
		{"/stock/SKU-5/restock", `{"quantity":1}]]]`, 400}, // trailing data
		{"/stock/SKU-5/restock", `{"quantity":1}}`, 400},
		{"/stock/SKU-5/restock", `{"quantity":9223372036854775807}`, 400}, // would overflow the stock
		{"/stock/%53KU-5/restock", `{"quantity":1}`, 200},                 // an escape it need not have: SKU-5
		{"/stock/SKU%2D5/restock", `{"quantity":1}`, 200},
	} {
		if code := h.Send(http.MethodPost, tc.path, tc.body); code != tc.want {
			t.Errorf("POST %s %s: got %d, want %d", tc.path, tc.body, code, tc.want)
		}
	}
	if code := h.GetJSON("/reservations/none", &struct{}{}); code != 404 {
		t.Errorf("GET unknown reservation: got %d, want 404", code)
	}
	var ok struct{ Status string }
	if code := h.GetJSON("/readyz", &ok); code != 200 || ok.Status != "ready" {
		t.Errorf("readyz: got %d %+v, want 200 ready", code, ok)
	}
}

// A restock's quantity is an integer as JSON Schema 2020-12 has it, and
// as the order API takes an item's: any number without a fractional part,
// however written (2.0, 1e1), is taken; one with a fraction is a 400. The
// same restock written otherwise, with its Idempotency-Key, is a replay.
func TestRestockQuantityIsAJSONSchemaInteger(t *testing.T) {
	h := start(t)
	header := http.Header{}
	header.Set("Idempotency-Key", "k-int")
	steps := []struct {
		body          string
		header        http.Header
		wantCode      int
		wantReplayed  bool
		wantRestocked int // of SKU-5
	}{
		{`{"quantity":2.0}`, nil, 200, false, 2},
		{`{"quantity":1e1}`, nil, 200, false, 12},
		{`{"quantity":0.3E+1}`, header, 200, false, 15},
		{`{"quantity":3}`, header, 200, true, 15},
		{`{"quantity":2.5}`, nil, 400, false, 15},
		{`{"quantity":0.0}`, nil, 400, false, 15},
	}
	for i, st := range steps {
		code, got := h.SendWithHeader(http.MethodPost, "/stock/SKU-5/restock", st.body, st.header)
		if replayed := got.Get("Idempotent-Replayed") == "true"; code != st.wantCode || replayed != st.wantReplayed {
			t.Errorf("step %d (%s): got %d replayed=%v, want %d replayed=%v", i, st.body, code, replayed, st.wantCode, st.wantReplayed)
		}
		if s := h.stock("SKU-5"); s.Restocked != st.wantRestocked || !s.Conserved() {
			t.Errorf("step %d (%s): got SKU-5 restocked %d (%+v), want %d and conserved", i, st.body, s.Restocked, s, st.wantRestocked)
		}
	}
}
