package web

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/services/console/internal/upstream"
)

// sagaEvents is a declined order: its stock released, with a timeout.
func sagaEvents(placed time.Time) []upstream.Event {
	ev := func(v int, typ, data string, after time.Duration) upstream.Event {
		return upstream.Event{Version: v, Type: typ, Data: json.RawMessage(data), RecordedAt: placed.Add(after),
			Metadata: upstream.EventMetadata{Cause: "test"}}
	}
	return []upstream.Event{
		ev(1, "OrderPlaced", `{"items":[{"sku":"SKU-2","quantity":1}],"currency":"EUR","total_cents":8999}`, 0),
		ev(2, "StockReserved", `{}`, 11*time.Millisecond),
		ev(3, "PaymentRequested", `{"amount_cents":8999}`, 12*time.Millisecond),
		ev(4, "StepTimedOut", `{"steps":["payment"]}`, 30*time.Second),
		ev(5, "PaymentDeclined", `{"reason":"card declined"}`, 31*time.Second),
		ev(6, "CompensationRequested", `{"steps":["stock"],"reason":"payment declined"}`, 31*time.Second),
		ev(7, "StockReleased", `{}`, 32*time.Second),
		ev(8, "OrderCancelled", `{"reason":"payment declined"}`, 32*time.Second),
	}
}

func TestEveryPageRenders(t *testing.T) {
	e := newEnv(t)
	placedAt := time.Now().Add(-time.Minute)
	e.orders.add(upstream.Order{ID: "ord-cancelled", CustomerID: "c-1", Status: upstream.StatusCancelled, Currency: "EUR",
		TotalCents: 8999, PlacedAt: placedAt, TraceID: "abc123"}, sagaEvents(placedAt)...)
	putDeadLetter(t, e, "payment.events", "order", []byte("\x00poison"))
	c := newClient(t, e.srv)
	tests := []struct {
		path string
		want []string
	}{
		{"/orders", []string{"Place an order", `id="qty-SKU-1"`, "Espresso beans", "ord-cancelled", `data-status-count="CANCELLED">1<`, `hx-get="/orders/live?since=`}},
		{"/orders?status=cancelled", []string{`href="/orders?status=CANCELLED" aria-current="true"`}},
		{"/orders/live", []string{`id="orders-live"`, `data-order-id="ord-cancelled"`}},
		{"/orders/ord-cancelled", []string{"Saga timeline", `kind-compensation" data-type="StockReleased"`, `kind-timeout" data-type="StepTimedOut"`,
			"Compensation requested: release stock", `href="http://jaeger.test:16686/trace/abc123"`, "+32s"}},
		{"/orders/ord-cancelled/live", []string{`id="order-live"`}},
		{"/faults", []string{"Fault flags", `id="flag-payment-payment_decline_rate"`, `id="flag-inventory-inventory_out_of_stock_skus"`, `id="faults-shipping"`}},
		{"/faults/payment/live", []string{`id="faults-payment"`, "payment_latency"}},
		{"/queue", []string{"Topics", "Dead-letter queue", `data-topic="payment.events"`, `\x00poison`, "Replay all", `name="confirm"`}},
		{"/queue/topics", []string{`id="topics"`}},
		{"/queue/outboxes", []string{`id="outboxes"`, `data-service="payment"`, `data-pending="0"`}},
		{"/queue/dlq", []string{`id="dlq"`, `data-group="order"`}},
		{"/stock", []string{`data-sku="SKU-5"`, `data-available="3"`, "Limited-edition cup", `id="restock-SKU-5"`}},
		{"/stock/live", []string{`id="stock"`}},
		{"/banner", []string{`id="fault-banner"`}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := c.get(tc.path, false)
			if r.Code != http.StatusOK {
				t.Fatalf("status: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type: got %q, want text/html", ct)
			}
			mustContain(t, tc.path, r.Body, tc.want...)
		})
	}
	// The dead letter's own page.
	dls, err := e.b.DeadLetters().List(t.Context(), backend.DeadLetterFilter{})
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters: got %v %v, want one", dls, err)
	}
	r := c.get("/queue/dlq/"+itoa(dls[0].ID), false)
	if r.Code != http.StatusOK {
		t.Fatalf("dead letter page: got %d, want 200", r.Code)
	}
	mustContain(t, "dead letter page", r.Body, "payment.events", `\x00poison`, "Last error")
}

func TestPagesWhenEverythingIsDown(t *testing.T) {
	e := newEnv(t, allDown(t))
	c := newClient(t, e.srv)
	for _, path := range []string{"/orders", "/orders/live", "/orders/ord-1", "/orders/ord-1/live", "/faults", "/faults/payment/live",
		"/queue", "/queue/topics", "/queue/outboxes", "/queue/dlq", "/queue/dlq/1", "/stock", "/stock/live", "/banner"} {
		t.Run("GET "+path, func(t *testing.T) {
			r := c.get(path, false)
			if r.Code != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (a down service is shown, not an error)\n%s", r.Code, abbreviate(r.Body))
			}
			if path == "/banner" {
				mustContain(t, path, r.Body, "Unreachable:", "payment")
				return
			}
			mustContain(t, path, r.Body, "Down.")
			switch {
			case path == "/queue/outboxes": // the services' admin APIs answer it
				mustContain(t, path, r.Body, "is down (http://127.0.0.1:", "connection refused")
			case strings.HasPrefix(path, "/queue"):
				mustContain(t, path, r.Body, "queue unavailable", "no such file")
			default:
				mustContain(t, path, r.Body, "is down (http://127.0.0.1:", "connection refused")
			}
		})
	}
	t.Run("the order form falls back to the catalogue", func(t *testing.T) {
		r := c.get("/orders", false)
		mustContain(t, "/orders", r.Body, "Stock unknown:", `id="qty-SKU-1"`, `id="qty-SKU-5"`, "Place order")
	})
	actions := []struct {
		path string
		form url.Values
	}{
		{"/orders", url.Values{"customer_id": {"c-1"}, "sku": {"SKU-1"}, "quantity": {"1"}}},
		{"/orders/ord-1/cancel", nil},
		{"/faults/payment/payment_decline_rate", url.Values{"value": {"0.5"}}},
		{"/faults/payment/payment_decline_rate/reset", nil},
		{"/queue/dlq/1/replay", nil},
		{"/queue/dlq/replay", nil},
		{"/queue/dlq/purge", url.Values{"confirm": {"yes"}}},
		{"/stock/SKU-1/restock", url.Values{"quantity": {"5"}}},
	}
	for _, a := range actions {
		for _, htmx := range []bool{false, true} {
			t.Run("POST "+a.path+map[bool]string{true: " (htmx)"}[htmx], func(t *testing.T) {
				form := url.Values{}
				for k, v := range a.form {
					form[k] = v
				}
				r := c.post(a.path, form, htmx)
				if r.Code != http.StatusServiceUnavailable {
					t.Fatalf("status: got %d, want 503\n%s", r.Code, abbreviate(r.Body))
				}
				mustContain(t, a.path, r.Body, `class="flash flash-error"`)
				if htmx {
					mustContain(t, a.path, r.Body, `hx-swap-oob="true"`)
				} else {
					mustContain(t, a.path, r.Body, "<!doctype html>")
				}
			})
		}
	}
}

func TestPlaceOrder(t *testing.T) {
	e := newEnv(t)
	c := newClient(t, e.srv)

	r := c.post("/orders", url.Values{"customer_id": {" c-1 "}, "idempotency_key": {"key-1"},
		"sku": {"SKU-1", "SKU-5"}, "quantity": {"2", ""}}, true)
	if r.Code != http.StatusOK {
		t.Fatalf("htmx place: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
	}
	mustContain(t, "htmx place", r.Body, `id="place-order"`, `data-order-id="ord-1"`, "Order placed (PENDING)", `hx-swap-oob="true"`,
		`value="c-1"`) // the customer id stays for the next order
	if got := r.Header.Get("HX-Trigger"); got != "orders-changed" {
		t.Errorf("HX-Trigger: got %q, want orders-changed", got)
	}
	placedOrders, _, _ := e.orders.seen()
	if len(placedOrders) != 1 {
		t.Fatalf("orders placed: got %d, want 1", len(placedOrders))
	}
	p := placedOrders[0]
	if p.Body.CustomerID != "c-1" || len(p.Body.Items) != 1 || p.Body.Items[0] != (upstream.Line{SKU: "SKU-1", Quantity: 2}) || p.Key != "key-1" {
		t.Errorf("order sent: got %+v key %q, want c-1 with 2×SKU-1 and key key-1", p.Body, p.Key)
	}
	if m := regexp.MustCompile(`name="idempotency_key" value="([^"]+)"`).FindStringSubmatch(r.Body); m == nil || m[1] == "key-1" {
		t.Errorf("the next form's idempotency key: got %v, want a fresh one", m)
	}

	// Without JavaScript: 303 to the order's page, which shows the flash once.
	r = c.post("/orders", url.Values{"customer_id": {"c-2"}, "sku": {"SKU-5"}, "quantity": {"1"}}, false)
	if r.Code != http.StatusSeeOther || r.Header.Get("Location") != "/orders/ord-2" {
		t.Fatalf("form place: got %d to %q, want 303 to /orders/ord-2", r.Code, r.Header.Get("Location"))
	}
	page := c.get("/orders/ord-2", false)
	mustContain(t, "order page after placing", page.Body, "Order placed (PENDING)", `id="cancel-order"`)
	page = c.get("/orders/ord-2", false)
	mustNotContain(t, "order page reloaded", page.Body, "Order placed (PENDING)")
}

// The customer id's limit counts characters, as the order API does: 128
// two-byte letters are sent on.
func TestPlaceOrderCountsTheCustomerIDInCharacters(t *testing.T) {
	e := newEnv(t)
	c := newClient(t, e.srv)
	long := strings.Repeat("ж", 128)
	if r := c.post("/orders", url.Values{"customer_id": {long}, "sku": {"SKU-1"}, "quantity": {"1"}}, true); r.Code != http.StatusOK {
		t.Fatalf("place for 128 two-byte letters: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
	}
	if placedOrders, _, _ := e.orders.seen(); len(placedOrders) != 1 || placedOrders[0].Body.CustomerID != long {
		t.Fatalf("orders placed: got %d, want one for the 128-letter customer id", len(placedOrders))
	}
}

func TestPlaceOrderValidation(t *testing.T) {
	tests := []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{"no customer", url.Values{"customer_id": {"  "}, "sku": {"SKU-1"}, "quantity": {"1"}}, 422, "Enter a customer id"},
		{"long customer", url.Values{"customer_id": {strings.Repeat("c", 129)}, "sku": {"SKU-1"}, "quantity": {"1"}}, 422, "at most 128 characters"},
		{"long customer in two-byte letters", url.Values{"customer_id": {strings.Repeat("ж", 129)}, "sku": {"SKU-1"}, "quantity": {"1"}}, 422, "at most 128 characters"},
		{"nothing ordered", url.Values{"customer_id": {"c"}, "sku": {"SKU-1", "SKU-5"}, "quantity": {"0", ""}}, 422, "Enter a quantity for at least one SKU"},
		{"not a number", url.Values{"customer_id": {"c"}, "sku": {"SKU-1"}, "quantity": {"two"}}, 422, "Enter a whole number, not &#34;two&#34;"},
		{"too many", url.Values{"customer_id": {"c"}, "sku": {"SKU-1"}, "quantity": {"1001"}}, 422, "Enter 0 to 1000"},
		{"negative", url.Values{"customer_id": {"c"}, "sku": {"SKU-1"}, "quantity": {"-1"}}, 422, "Enter 0 to 1000"},
		{"unknown sku", url.Values{"customer_id": {"c"}, "sku": {"SKU-9"}, "quantity": {"1"}}, 422, "SKU &#34;SKU-9&#34; is not in the catalogue"},
		{"mismatched form", url.Values{"customer_id": {"c"}, "sku": {"SKU-1", "SKU-5"}, "quantity": {"1"}}, 422, "The form is incomplete"},
		{"refused by the order API", url.Values{"customer_id": {"reject-me"}, "sku": {"SKU-5"}, "quantity": {"4"}}, 422, "The order service says: customer id is blocked"},
		{"order API failure", url.Values{"customer_id": {"explode"}, "sku": {"SKU-5"}, "quantity": {"4"}}, 503, "order service answered 500"},
	}
	for _, tc := range tests {
		for _, htmx := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{true: " (htmx)"}[htmx], func(t *testing.T) {
				e := newEnv(t)
				c := newClient(t, e.srv)
				r := c.post("/orders", tc.form, htmx)
				if r.Code != tc.status {
					t.Fatalf("status: got %d, want %d\n%s", r.Code, tc.status, abbreviate(r.Body))
				}
				mustContain(t, tc.name, r.Body, tc.want, `class="flash flash-error"`, `id="place-order"`)
				placedOrders, _, _ := e.orders.seen()
				if tc.name != "refused by the order API" && tc.name != "order API failure" && len(placedOrders) != 0 {
					t.Errorf("orders placed: got %d, want 0 (refused before asking)", len(placedOrders))
				}
			})
		}
	}
	t.Run("field errors of the order API land on their rows", func(t *testing.T) {
		e := newEnv(t)
		c := newClient(t, e.srv)
		r := c.post("/orders", url.Values{"customer_id": {"reject-me"}, "sku": {"SKU-1", "SKU-5"}, "quantity": {"", "4"}}, true)
		// items[0] is the first line sent: SKU-5.
		re := regexp.MustCompile(`(?s)id="qty-SKU-5".*?The order service says: quantity must be at most 3`)
		if !re.MatchString(r.Body) {
			t.Errorf("the quantity error is not on SKU-5's row:\n%s", abbreviate(r.Body))
		}
	})
}

func TestOrdersList(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	finished := now.Add(1500 * time.Millisecond)
	e.orders.add(upstream.Order{ID: "0190aaaa-0000-7000-8000-00000000a001", CustomerID: "c-1", Status: upstream.StatusCompleted, Currency: "EUR", PlacedAt: now, FinishedAt: &finished})
	e.orders.add(upstream.Order{ID: "ord-run", CustomerID: "c-2", Status: upstream.StatusStockReserved, Currency: "EUR", PlacedAt: now})
	c := newClient(t, e.srv)

	r := c.get("/orders?status=completed", false)
	if _, _, q := e.orders.seen(); q.Get("status") != "COMPLETED" {
		t.Errorf("status asked of the order API: got %q, want COMPLETED", q.Get("status"))
	}
	mustContain(t, "filtered list", r.Body, "…0000a001", "1.5s", `data-status="COMPLETED"`, `hx-get="/orders/live?since=`, `status=COMPLETED`)
	mustNotContain(t, "filtered list", r.Body, `data-order-id="ord-run"`)

	r = c.get("/orders?status=bogus", false)
	mustContain(t, "bad status", r.Body, "There is no status &#34;bogus&#34;", `data-order-id="ord-run"`)

	r = c.get("/orders/live?cursor=bad", true)
	mustContain(t, "bad cursor", r.Body, "invalid cursor")

	r = c.get("/orders", false)
	mustContain(t, "all", r.Body, `data-order-id="ord-run"`, "running", `data-status-count="ALL">2<`)
}

func TestLiveRegionsAnswer204WhenNothingChanged(t *testing.T) {
	e := newEnv(t)
	e.orders.add(upstream.Order{ID: "ord-1", Status: upstream.StatusPending, Currency: "EUR", PlacedAt: time.Now()})
	c := newClient(t, e.srv)
	since := regexp.MustCompile(`hx-get="/orders/live\?since=([a-z0-9]+)"`)
	first := c.get("/orders/live", true)
	m := since.FindStringSubmatch(first.Body)
	if m == nil {
		t.Fatalf("no since in %s", first.Body)
	}
	if r := c.get("/orders/live?since="+m[1], true); r.Code != http.StatusNoContent {
		t.Fatalf("unchanged poll: got %d, want 204", r.Code)
	}
	e.orders.setStatus("ord-1", upstream.StatusCompleted)
	r := c.get("/orders/live?since="+m[1], true)
	if r.Code != http.StatusOK {
		t.Fatalf("changed poll: got %d, want 200", r.Code)
	}
	mustContain(t, "changed poll", r.Body, `data-status="COMPLETED"`)
	// Without htmx, the region is always sent.
	if r := c.get("/orders/live?since="+since.FindStringSubmatch(r.Body)[1], false); r.Code != http.StatusOK {
		t.Errorf("poll without htmx: got %d, want 200", r.Code)
	}
}

// A poll of a region whose data has not changed answers 204, whatever the
// region renders afresh each time (the stock table's idempotency keys).
func TestPollsOfUnchangedRegionsAnswer204(t *testing.T) {
	e := newEnv(t)
	e.orders.add(upstream.Order{ID: "ord-1", Status: upstream.StatusPending, Currency: "EUR", PlacedAt: time.Now()})
	c := newClient(t, e.srv)
	src := regexp.MustCompile(`hx-get="([^"]+)"`)
	for _, path := range []string{"/stock/live", "/orders/live", "/orders/ord-1/live", "/faults/payment/live",
		"/queue/topics", "/queue/outboxes", "/queue/dlq", "/banner"} {
		t.Run(path, func(t *testing.T) {
			first := c.get(path, true)
			m := src.FindStringSubmatch(first.Body)
			if first.Code != http.StatusOK || m == nil {
				t.Fatalf("first poll: got %d without a polling region, want 200 with one\n%s", first.Code, abbreviate(first.Body))
			}
			if r := c.get(html.UnescapeString(m[1]), true); r.Code != http.StatusNoContent {
				t.Errorf("second poll: got %d, want 204\n%s", r.Code, abbreviate(r.Body))
			}
		})
	}
}

func TestOrderPage(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	e.orders.add(upstream.Order{ID: "ord-run", Status: upstream.StatusPaymentCharged, Currency: "EUR", PlacedAt: now, TraceID: "t-1"},
		upstream.Event{Version: 1, Type: "OrderPlaced", Data: json.RawMessage(`{}`), RecordedAt: now})
	e.orders.add(upstream.Order{ID: "ord-done", Status: upstream.StatusCancelled, Currency: "EUR", PlacedAt: now}, sagaEvents(now)...)
	c := newClient(t, e.srv)

	r := c.get("/orders/ord-run", false)
	mustContain(t, "running order", r.Body, `id="cancel-order"`, `hx-trigger="every 1000ms"`, `href="http://jaeger.test:16686/trace/t-1"`, "The saga is running")

	r = c.get("/orders/ord-done", false)
	mustNotContain(t, "finished order", r.Body, `id="cancel-order"`, `hx-get="/orders/ord-done/live`) // stops polling
	mustContain(t, "finished order", r.Body, "No trace id recorded", "Order cancelled")

	r = c.get("/orders/nope", false)
	if r.Code != http.StatusNotFound {
		t.Errorf("unknown order: got %d, want 404", r.Code)
	}
	mustContain(t, "unknown order", r.Body, "Order not found")

	r = c.get("/orders/"+url.PathEscape("bad id"), false)
	if r.Code != http.StatusNotFound {
		t.Errorf("bad id: got %d, want 404", r.Code)
	}
}

// providerCard returns the "At the providers" card of an order page.
func providerCard(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<section class="card" id="providers" aria-labelledby="providers-h">.*?</section>`).FindString(body)
	if m == "" {
		t.Fatalf("no providers card:\n%s", abbreviate(body))
	}
	return m
}

// providerEntry returns one provider's entry of the card.
func providerEntry(t *testing.T, card, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<div id="provider-` + key + `".*?</dd>`).FindString(card)
	if m == "" {
		t.Fatalf("no %s entry in the card:\n%s", key, card)
	}
	return m
}

func TestOrderPageProviders(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name             string
		gateway, carrier *upstream.ProviderRecord
		wantGateway      []string
		wantCarrier      []string
		unwantedGateway  []string
		running          bool // the order is not terminal yet
	}{
		{
			name:        "no record yet",
			running:     true,
			wantGateway: []string{`data-outcome="NONE"`, "no record yet"},
			wantCarrier: []string{`data-outcome="NONE"`, "no record yet"},
		},
		{
			name:        "finished without reaching the carrier",
			gateway:     &upstream.ProviderRecord{Outcome: upstream.OutcomeRefused, Reason: "card declined (simulated)", Requests: 1},
			wantCarrier: []string{`data-outcome="NONE"`, "no record: never asked"},
		},
		{
			name: "charged once though asked twice (crash after commit), booked",
			gateway: &upstream.ProviderRecord{Outcome: upstream.OutcomeAccepted, Reference: "pay_01ABC", AmountCents: 1500,
				Requests: 2, CreatedAt: now, UpdatedAt: now},
			carrier: &upstream.ProviderRecord{Outcome: upstream.OutcomeAccepted, Reference: "shp_01XYZ", Requests: 1},
			wantGateway: []string{`data-outcome="ACCEPTED"`, `data-requests="2"`,
				"charged 15.00 EUR as pay_01ABC", "asked 2 times, charged once (1 repeat had no effect)"},
			wantCarrier:     []string{`data-outcome="ACCEPTED"`, "booked shp_01XYZ", "asked 1 time, booked once"},
			unwantedGateway: []string{"refunded", "refund asked"},
		},
		{
			name: "refunded and withdrawn",
			gateway: &upstream.ProviderRecord{Outcome: upstream.OutcomeAccepted, Reference: "pay_02", AmountCents: 8999,
				Cancelled: true, Requests: 1, Cancels: 3},
			carrier: &upstream.ProviderRecord{Outcome: upstream.OutcomeAccepted, Reference: "shp_02", Cancelled: true, Requests: 1, Cancels: 1},
			wantGateway: []string{"charged 89.99 EUR as pay_02, then refunded", "asked 1 time, charged once;",
				"refund asked 3 times, refunded once (2 repeats had no effect)"},
			wantCarrier:     []string{"booked shp_02, then withdrawn", "cancellation asked 1 time, withdrawn once"},
			unwantedGateway: []string{"repeat had no effect"},
		},
		{
			name:        "declined, with its reason",
			gateway:     &upstream.ProviderRecord{Outcome: upstream.OutcomeRefused, Reason: "card declined (simulated)", Requests: 1},
			carrier:     &upstream.ProviderRecord{Outcome: upstream.OutcomeRefused, Reason: "no carrier for this address", Requests: 2},
			wantGateway: []string{`data-outcome="REFUSED"`, "declined: card declined (simulated)", "asked 1 time, declined once"},
			wantCarrier: []string{"refused: no carrier for this address", "asked 2 times, refused once (1 repeat had no effect)"},
		},
		{
			name:        "voided: the compensation came first",
			gateway:     &upstream.ProviderRecord{Outcome: upstream.OutcomeVoided, Reason: "payment of this order was voided", Requests: 1, Cancels: 1},
			carrier:     &upstream.ProviderRecord{Outcome: upstream.OutcomeVoided, Reason: "shipment of this order was cancelled", Cancels: 2},
			wantGateway: []string{`data-outcome="VOIDED"`, "voided before any charge (a refund came first)", "asked 1 time after that, refused", "refund asked 1 time, which voided the charge"},
			wantCarrier: []string{"voided before any booking (a cancellation came first)", "never asked to book",
				"cancellation asked 2 times, the first voided the booking (1 repeat had no effect)"},
			unwantedGateway: []string{"charged 0", "charged once"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			status := upstream.StatusCompleted
			if tc.running {
				status = upstream.StatusPending
			}
			e.orders.add(upstream.Order{ID: "ord-1", Status: status, Currency: "EUR", PlacedAt: now},
				upstream.Event{Version: 1, Type: "OrderPlaced", Data: json.RawMessage(`{}`), RecordedAt: now})
			if tc.gateway != nil {
				tc.gateway.OrderID = "ord-1"
				e.admins[ServicePayment].setRecord(*tc.gateway)
			}
			if tc.carrier != nil {
				tc.carrier.OrderID = "ord-1"
				e.admins[ServiceShipping].setRecord(*tc.carrier)
			}
			c := newClient(t, e.srv)
			for _, path := range []string{"/orders/ord-1", "/orders/ord-1/live"} {
				r := c.get(path, path != "/orders/ord-1")
				if r.Code != http.StatusOK {
					t.Fatalf("%s: got %d, want 200", path, r.Code)
				}
				card := providerCard(t, r.Body)
				mustContain(t, path+" card", card, "At the providers", `<dl class="facts providers">`,
					"<dt>Payment gateway</dt>", "<dt>Carrier</dt>")
				mustNotContain(t, path+" card", card, "Down.", "<script")
				g, s := providerEntry(t, card, "gateway"), providerEntry(t, card, "carrier")
				mustContain(t, path+" gateway", g, tc.wantGateway...)
				mustContain(t, path+" carrier", s, tc.wantCarrier...)
				mustNotContain(t, path+" gateway", g, tc.unwantedGateway...)
				// A finished order whose providers answered stops polling.
				if !tc.running {
					mustNotContain(t, path, r.Body, `hx-get="/orders/ord-1/live`)
				}
			}
			if got := e.admins[ServicePayment].askedProvider(); len(got) == 0 || got[0] != "ord-1" {
				t.Errorf("gateway asked for %v, want ord-1", got)
			}
			if got := e.admins[ServiceShipping].askedProvider(); len(got) == 0 || got[0] != "ord-1" {
				t.Errorf("carrier asked for %v, want ord-1", got)
			}
		})
	}

	t.Run("a provider answering an error or down is shown as down; the order still renders", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.ShippingURL = deadURL(t) })
		e.orders.add(upstream.Order{ID: "ord-1", Status: upstream.StatusCompleted, Currency: "EUR", PlacedAt: now},
			upstream.Event{Version: 1, Type: "OrderCompleted", Data: json.RawMessage(`{}`), RecordedAt: now})
		e.admins[ServicePayment].failProvider(http.StatusInternalServerError)
		c := newClient(t, e.srv)
		r := c.get("/orders/ord-1", false)
		if r.Code != http.StatusOK {
			t.Fatalf("status: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
		}
		mustContain(t, "order page", r.Body, `id="order-status"`, `data-status="COMPLETED"`, "Saga timeline", `data-type="OrderCompleted"`)
		card := providerCard(t, r.Body)
		g, s := providerEntry(t, card, "gateway"), providerEntry(t, card, "carrier")
		mustContain(t, "gateway", g, `data-outcome="DOWN"`, `<p class="down" role="alert"><strong>Down.</strong>`,
			"payment answered 500: provider books unavailable")
		mustContain(t, "carrier", s, `data-outcome="DOWN"`, "<strong>Down.</strong>", "shipping is down (http://127.0.0.1:", "connection refused")
		// The page keeps polling until it can read the providers, though the order has ended.
		mustContain(t, "order page", r.Body, `hx-get="/orders/ord-1/live?since=`)

		// The gateway answers again; the carrier is still down.
		e.admins[ServicePayment].failProvider(0)
		e.admins[ServicePayment].setRecord(upstream.ProviderRecord{OrderID: "ord-1", Outcome: upstream.OutcomeAccepted,
			Reference: "pay_9", AmountCents: 1500, Requests: 1})
		r = c.get("/orders/ord-1/live", true)
		card = providerCard(t, r.Body)
		mustContain(t, "gateway back", providerEntry(t, card, "gateway"), "charged 15.00 EUR as pay_9</span>", "· asked 1 time, charged once<")
		mustContain(t, "carrier still down", providerEntry(t, card, "carrier"), "Down.")
	})
}

func TestCancelOrder(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	e.orders.add(upstream.Order{ID: "ord-run", Status: upstream.StatusStockReserved, Currency: "EUR", PlacedAt: now})
	e.orders.add(upstream.Order{ID: "ord-done", Status: upstream.StatusCompleted, Currency: "EUR", PlacedAt: now})
	c := newClient(t, e.srv)

	r := c.post("/orders/ord-run/cancel", url.Values{"reason": {"changed my mind"}}, true)
	if r.Code != http.StatusOK {
		t.Fatalf("cancel: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
	}
	mustContain(t, "cancel", r.Body, "Cancellation requested: the order is CANCELLING.", `id="order-live"`)
	if _, cancels, _ := e.orders.seen(); len(cancels) != 1 || cancels[0] != "ord-run:changed my mind" {
		t.Errorf("cancels: got %v, want ord-run with its reason", cancels)
	}

	r = c.post("/orders/ord-done/cancel", nil, true)
	if r.Code != http.StatusConflict {
		t.Fatalf("cancel a completed order: got %d, want 409", r.Code)
	}
	mustContain(t, "cancel a completed order", r.Body, "Not cancelled: order cannot be cancelled: order ord-done is COMPLETED")

	r = c.post("/orders/ord-run/cancel", url.Values{"reason": {strings.Repeat("r", 201)}}, false)
	if r.Code != http.StatusUnprocessableEntity {
		t.Fatalf("long reason: got %d, want 422", r.Code)
	}
	mustContain(t, "long reason", r.Body, "longer than 200 characters")

	r = c.post("/orders/ord-run/cancel", nil, false)
	if r.Code != http.StatusSeeOther || r.Header.Get("Location") != "/orders/ord-run" {
		t.Errorf("cancel without JavaScript: got %d to %q, want 303 to the order", r.Code, r.Header.Get("Location"))
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name      string
		path      string
		form      url.Values
		status    int
		wantSet   string // what the payment fake received; "" for nothing
		wantBody  string
		wantReset bool
	}{
		{"rate as a percentage", "/faults/payment/payment_decline_rate", url.Values{"value": {"50%"}}, 200, "payment_decline_rate=0.5", "payment: payment_decline_rate is now 0.5 (was 0).", false},
		{"preset wins over the field", "/faults/payment/payment_decline_rate", url.Values{"value": {"0.2"}, "preset": {"1"}}, 200, "payment_decline_rate=1", "is now 1", false},
		{"duration", "/faults/payment/payment_latency", url.Values{"value": {" 250ms "}}, 200, "payment_latency=250ms", "is now 250ms", false},
		{"switch", "/faults/payment/poison", url.Values{"preset": {"true"}}, 200, "poison=true", "is now true", false},
		{"rate too high", "/faults/payment/payment_decline_rate", url.Values{"value": {"2"}}, 422, "", "a rate is from 0 to 1", false},
		{"rate not a number", "/faults/payment/payment_decline_rate", url.Values{"value": {"lots"}}, 422, "", "a rate is a number from 0 to 1", false},
		{"bad duration", "/faults/payment/payment_latency", url.Values{"value": {"soon"}}, 422, "", "a duration is like 250ms", false},
		{"duration too long", "/faults/payment/payment_latency", url.Values{"value": {"11m"}}, 422, "", "a duration is from 0 to 10m0s", false},
		{"refused by the service", "/faults/payment/handler_latency", url.Values{"value": {"9m"}}, 422, "", "payment: handler_latency not changed: value: at most 5m0s", false},
		{"reset", "/faults/payment/payment_decline_rate/reset", nil, 200, "", "is now 0", true},
		{"unknown flag", "/faults/payment/nope", url.Values{"value": {"1"}}, 404, "", "payment has no fault flag &#34;nope&#34;", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := newClient(t, e.srv)
			r := c.post(tc.path, tc.form, true)
			if r.Code != tc.status {
				t.Fatalf("status: got %d, want %d\n%s", r.Code, tc.status, abbreviate(r.Body))
			}
			mustContain(t, tc.name, r.Body, tc.wantBody, `id="faults-payment"`)
			sets, resets, _ := e.admins[ServicePayment].calls()
			switch {
			case tc.wantSet != "" && (len(sets) != 1 || sets[0] != tc.wantSet):
				t.Errorf("set: got %v, want [%s]", sets, tc.wantSet)
			case tc.wantSet == "" && len(sets) != 0:
				t.Errorf("set: got %v, want nothing", sets)
			}
			if tc.wantReset != (len(resets) == 1) {
				t.Errorf("resets: got %v, want reset %v", resets, tc.wantReset)
			}
			if tc.status == 200 && r.Header.Get("HX-Trigger") != "faults-changed" {
				t.Errorf("HX-Trigger: got %q, want faults-changed", r.Header.Get("HX-Trigger"))
			}
			if tc.status == 422 {
				mustContain(t, tc.name, r.Body, `aria-invalid="true"`, `class="field-error"`)
			}
		})
	}
	t.Run("a string the service refuses", func(t *testing.T) {
		e := newEnv(t)
		c := newClient(t, e.srv)
		r := c.post("/faults/inventory/inventory_out_of_stock_skus", url.Values{"value": {"refuse-me"}}, true)
		if r.Code != http.StatusUnprocessableEntity {
			t.Fatalf("status: got %d, want 422", r.Code)
		}
		mustContain(t, "refused", r.Body, "SKU list is malformed", `value="refuse-me"`)
	})
	t.Run("a flag the service no longer knows", func(t *testing.T) {
		for _, htmx := range []bool{true, false} {
			e := newEnv(t)
			e.admins[ServicePayment].ghost = "gone"
			c := newClient(t, e.srv)
			r := c.post("/faults/payment/gone", url.Values{"preset": {"true"}}, htmx)
			if r.Code != http.StatusNotFound {
				t.Fatalf("status (htmx %v): got %d, want 404\n%s", htmx, r.Code, abbreviate(r.Body))
			}
			mustContain(t, "flag gone", r.Body, "payment: gone not changed: unknown fault flag gone")
		}
	})
	t.Run("unknown service", func(t *testing.T) {
		e := newEnv(t)
		c := newClient(t, e.srv)
		r := c.post("/faults/billing/x", url.Values{"value": {"1"}}, false)
		if r.Code != http.StatusNotFound {
			t.Fatalf("status: got %d, want 404", r.Code)
		}
		mustContain(t, "unknown service", r.Body, "There is no service &#34;billing&#34;")
		if r := c.get("/faults/billing/live", true); r.Code != http.StatusNotFound {
			t.Errorf("live of an unknown service: got %d, want 404", r.Code)
		}
	})
	t.Run("without JavaScript, then the banner", func(t *testing.T) {
		e := newEnv(t)
		c := newClient(t, e.srv)
		r := c.post("/faults/payment/payment_decline_rate", url.Values{"preset": {"1"}}, false)
		if r.Code != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/faults") {
			t.Fatalf("got %d to %q, want 303 to /faults", r.Code, r.Header.Get("Location"))
		}
		page := c.get("/orders", false)
		mustContain(t, "banner after setting", page.Body, "Faults active:", `data-active-flag="payment/payment_decline_rate"`)
		mustContain(t, "flash after redirect", c.get("/faults", false).Body, "Faults active:")
		e.admins[ServicePayment].setValue("payment_decline_rate", "0")
		mustNotContain(t, "banner after clearing", c.get("/banner", true).Body, "Faults active:")
		r = c.post("/faults/payment/payment_latency", url.Values{"value": {"nope"}}, false)
		if r.Code != http.StatusUnprocessableEntity {
			t.Fatalf("invalid without JavaScript: got %d, want 422", r.Code)
		}
		mustContain(t, "invalid without JavaScript", r.Body, "<!doctype html>", "a duration is like", `id="faults-shipping"`)
	})
}

func TestNormalizeFlagValue(t *testing.T) {
	tests := []struct {
		typ, in, want string
		ok            bool
	}{
		{upstream.FaultRate, "0.25", "0.25", true},
		{upstream.FaultRate, "25%", "0.25", true},
		{upstream.FaultRate, "100 %", "1", true},
		{upstream.FaultRate, "1.5", "", false},
		{upstream.FaultRate, "-0.1", "", false},
		{upstream.FaultRate, "-0", "0", true},
		{upstream.FaultRate, "-0%", "0", true},
		{upstream.FaultRate, "NaN", "", false},
		{upstream.FaultRate, "", "", false},
		{upstream.FaultDuration, "0", "0", true},
		{upstream.FaultDuration, "1m30s", "1m30s", true},
		{upstream.FaultDuration, "-1s", "", false},
		{upstream.FaultDuration, "10", "", false},
		{upstream.FaultBool, "TRUE", "true", true},
		{upstream.FaultBool, "0", "false", true},
		{upstream.FaultBool, "yes", "", false},
		{upstream.FaultString, " SKU-1,SKU-3 ", "SKU-1,SKU-3", true},
		{upstream.FaultString, "", "", true},
		{upstream.FaultString, strings.Repeat("x", 1001), "", false},
	}
	for _, tc := range tests {
		got, msg := normalizeFlagValue(tc.typ, tc.in)
		if got != tc.want || (msg == "") != tc.ok {
			t.Errorf("normalizeFlagValue(%s, %q): got %q (message %q), want %q ok=%v", tc.typ, tc.in, got, msg, tc.want, tc.ok)
		}
	}
}

func TestStock(t *testing.T) {
	tests := []struct {
		name, path, qty string
		status          int
		want            string
		wantRestock     string
	}{
		{"restock", "/stock/SKU-5/restock", "7", 200, "SKU-5 restocked by 7: 10 available.", "SKU-5+7"},
		{"zero", "/stock/SKU-5/restock", "0", 422, "Enter a whole number from 1 to 1000000, not &#34;0&#34;.", ""},
		{"not a number", "/stock/SKU-5/restock", "many", 422, "Enter a whole number", ""},
		{"too many", "/stock/SKU-5/restock", "1000001", 422, "Enter a whole number", ""},
		{"unknown sku", "/stock/SKU-9/restock", "1", 404, "SKU-9 not restocked: sku: inventory holds no SKU &#34;SKU-9&#34;", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := newClient(t, e.srv)
			r := c.post(tc.path, url.Values{"quantity": {tc.qty}}, true)
			if r.Code != tc.status {
				t.Fatalf("status: got %d, want %d\n%s", r.Code, tc.status, abbreviate(r.Body))
			}
			mustContain(t, tc.name, r.Body, tc.want, `id="stock"`)
			_, _, restocks := e.admins[ServiceInventory].calls()
			if got := strings.Join(restocks, ","); got != tc.wantRestock {
				t.Errorf("restocks: got %q, want %q", got, tc.wantRestock)
			}
			if tc.status == 422 {
				mustContain(t, tc.name, r.Body, `aria-invalid="true"`)
			}
		})
	}
	t.Run("without JavaScript", func(t *testing.T) {
		e := newEnv(t)
		c := newClient(t, e.srv)
		r := c.post("/stock/SKU-1/restock", url.Values{"quantity": {"10"}}, false)
		if r.Code != http.StatusSeeOther || r.Header.Get("Location") != "/stock" {
			t.Fatalf("got %d to %q, want 303 to /stock", r.Code, r.Header.Get("Location"))
		}
		mustContain(t, "stock after restock", c.get("/stock", false).Body, "SKU-1 restocked by 10: 1000 available.", `data-available="1000"`)
	})
}

func TestTimeline(t *testing.T) {
	placed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	entries := timeline(sagaEvents(placed), placed)
	want := []struct{ typ, kind, title string }{
		{"OrderPlaced", kindStart, "Order placed; stock reservation requested"},
		{"StockReserved", kindOK, "Stock reserved"},
		{"PaymentRequested", kindForward, "Payment requested"},
		{"StepTimedOut", kindTimeout, "Timed out waiting for payment"},
		{"PaymentDeclined", kindFailure, "Payment declined"},
		{"CompensationRequested", kindCompensation, "Compensation requested: release stock"},
		{"StockReleased", kindCompensation, "Stock released (compensation: release stock)"},
		{"OrderCancelled", kindEnded, "Order cancelled"},
	}
	if len(entries) != len(want) {
		t.Fatalf("entries: got %d, want %d", len(entries), len(want))
	}
	for i, w := range want {
		e := entries[i]
		if e.Type != w.typ || e.Kind != w.kind || e.Title != w.title {
			t.Errorf("entry %d: got %s/%s/%q, want %s/%s/%q", i, e.Type, e.Kind, e.Title, w.typ, w.kind, w.title)
		}
	}
	if got := entries[0].Detail; got != "1 × SKU-2 — 89.99 EUR" {
		t.Errorf("placed detail: got %q, want 1 × SKU-2 — 89.99 EUR", got)
	}
	if got := entries[7].SincePlaced; got != 32*time.Second {
		t.Errorf("since placed: got %s, want 32s", got)
	}
	other := timeline([]upstream.Event{{Type: "SomethingNew", Data: json.RawMessage(`not json`), RecordedAt: placed}}, time.Time{})
	if other[0].Kind != kindOther || other[0].Title != "SomethingNew" || other[0].SincePlaced != 0 {
		t.Errorf("unknown event: got %+v, want kind other titled by its type", other[0])
	}
	for _, tc := range []struct{ steps, want string }{
		{"payment", "refund payment"}, {"shipment", "cancel shipment"}, {"x", "undo x"},
	} {
		if got := undo(tc.steps); got != tc.want {
			t.Errorf("undo(%s): got %q, want %q", tc.steps, got, tc.want)
		}
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {37 * time.Millisecond, "37ms"}, {1540 * time.Millisecond, "1.5s"}, {185 * time.Second, "3m05s"},
		{2 * time.Hour, "2h0m0s"}, {-2 * time.Second, "-2s"},
	} {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%s): got %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := money(-150, "EUR"); got != "-1.50 EUR" {
		t.Errorf("money: got %q, want -1.50 EUR", got)
	}
}

// A payload is shown as it is: JSON indented, token for token.
func TestPayloadText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"json", `{"a":1}`, "{\n  \"a\": 1\n}"},
		{"integer beyond float64", `{"id":9007199254740993}`, "{\n  \"id\": 9007199254740993\n}"},
		{"markup characters", `{"note":"<b>&</b>"}`, "{\n  \"note\": \"<b>&</b>\"\n}"},
		{"repeated keys, in their order", `{"b":1,"a":2,"b":3}`, "{\n  \"b\": 1,\n  \"a\": 2,\n  \"b\": 3\n}"},
		{"numbers as written", `[1.0,1e3,-0,0.10]`, "[\n  1.0,\n  1e3,\n  -0,\n  0.10\n]"},
		{"escapes as written", `"caf\u00e9\/"`, `"caf\u00e9\/"`},
		{"spaces around", " \n{\"a\": [ ]}\n ", "{\n  \"a\": []\n}"},
		{"DEL in a string", "{\"a\":\"x\x7f\"}", "{\n  \"a\": \"x\\x7f\"\n}"},
		{"not json", `{"a":1`, `{"a":1`},
		{"control characters", "\x00poison\x7f", `\x00poison\x7f`},
		{"a C1 control character", "a\u009bb", `a\x9bb`},
		{"a right-to-left override in a string", "{\"customer_id\":\"c\u202eevil\"}", "{\n  \"customer_id\": \"c\\u202eevil\"\n}"},
		{"binary", "\xff\xfe", "(binary, base64) //4="},
		{"json with bytes that are not UTF-8", "\"\xff\"", "(binary, base64) Iv8i"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := payloadText([]byte(tc.in)); got != tc.want {
				t.Errorf("payloadText(%q): got %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// A finished order's page keeps polling for redeliveryWindow, so that a
// command redelivered after a crash shows at the providers without a
// reload, and stops after it once everything could be read.
func TestOrderPollsThroughTheRedeliveryWindow(t *testing.T) {
	now := time.Now()
	ended := func(ago time.Duration) *upstream.Order {
		at := now.Add(-ago)
		return &upstream.Order{Status: upstream.StatusCompleted, FinishedAt: &at}
	}
	answered := []providerView{{Outcome: "ACCEPTED"}, {Outcome: "NONE"}}
	tests := []struct {
		name string
		view orderView
		want time.Duration
	}{
		{"running", orderView{Order: &upstream.Order{Status: upstream.StatusPending}, Providers: answered}, time.Second},
		{"ended just now", orderView{Order: ended(5 * time.Second), Terminal: true, Providers: answered}, time.Second},
		{"ended a while ago", orderView{Order: ended(2 * time.Minute), Terminal: true, Providers: answered}, 0},
		{"ended a while ago, events unreadable", orderView{Order: ended(2 * time.Minute), Terminal: true, EventsDown: "down", Providers: answered}, time.Second},
		{"ended a while ago, a provider down", orderView{Order: ended(2 * time.Minute), Terminal: true,
			Providers: []providerView{{Outcome: "DOWN", Down: "down"}, {Outcome: "NONE"}}}, time.Second},
		{"ended, no finish time", orderView{Order: &upstream.Order{Status: upstream.StatusCompleted}, Terminal: true, Providers: answered}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.view.pollEvery(time.Second, now); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// The poll that finds the redelivery window over gets the region without
// polling, although what it shows has not changed: answered 204, the
// browser would keep the region it has, and poll on for good.
func TestOrderPageStopsPollingWhenTheWindowEnds(t *testing.T) {
	// The console's clock is the test's: the page is asked for a second
	// before the window ends and the poll a second after, however long
	// a busy machine takes between them.
	finished := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	var now atomic.Pointer[time.Time]
	setNow := func(at time.Time) { now.Store(&at) }
	setNow(finished.Add(redeliveryWindow - time.Second))
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return *now.Load() } })
	e.orders.add(upstream.Order{ID: "ord-done", Status: upstream.StatusCompleted, Currency: "EUR",
		PlacedAt: finished.Add(-time.Second), FinishedAt: &finished})
	c := newClient(t, e.srv)
	page := c.get("/orders/ord-done", false)
	m := regexp.MustCompile(`hx-get="/orders/ord-done/live\?since=([a-z0-9]+)"`).FindStringSubmatch(page.Body)
	if m == nil {
		t.Fatalf("order page inside the window: got no polling region, want one\n%s", abbreviate(page.Body))
	}
	setNow(finished.Add(redeliveryWindow + time.Second))
	r := c.get("/orders/ord-done/live?since="+m[1], true)
	if r.Code != http.StatusOK {
		t.Fatalf("poll after the window: got %d, want 200 with a region that stops polling", r.Code)
	}
	mustContain(t, "poll after the window", r.Body, `<div id="order-live" class="live">`)
	mustNotContain(t, "poll after the window", r.Body, "hx-get=")
}
