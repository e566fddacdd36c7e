package web

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/orderflow/orderflow/services/console/internal/upstream"
)

// A service that did the change but did not answer in time: the console
// says the outcome is unknown and how to find out, not that nothing was
// done.
func TestNoAnswerAfterSendingIsAnUnknownOutcome(t *testing.T) {
	tests := []struct {
		name string
		path string
		form url.Values
		hang func(e *env)
		done func(e *env) bool
		want string
	}{
		{"restock", "/stock/SKU-5/restock", url.Values{"quantity": {"7"}},
			func(e *env) { e.admins[ServiceInventory].hang = true },
			func(e *env) bool { _, _, r := e.admins[ServiceInventory].calls(); return len(r) == 1 },
			"SKU-5 may or may not be restocked: inventory got the request but gave no answer"},
		{"place an order", "/orders", url.Values{"customer_id": {"c-1"}, "idempotency_key": {"key-1"}, "sku": {"SKU-1"}, "quantity": {"1"}},
			func(e *env) { e.orders.hang = true },
			func(e *env) bool { p, _, _ := e.orders.seen(); return len(p) == 1 },
			"Sending this form again is safe: its idempotency key places one order at most."},
		{"cancel an order", "/orders/ord-run/cancel", nil,
			func(e *env) { e.orders.hang = true },
			func(e *env) bool { _, c, _ := e.orders.seen(); return len(c) == 1 },
			"The order may or may not be cancelled: order service got the request but gave no answer"},
		{"set a flag", "/faults/payment/payment_decline_rate", url.Values{"value": {"0.5"}},
			func(e *env) { e.admins[ServicePayment].hang = true },
			func(e *env) bool { s, _, _ := e.admins[ServicePayment].calls(); return len(s) == 1 },
			"payment: payment_decline_rate may or may not be changed"},
	}
	for _, tc := range tests {
		for _, htmx := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: " (htmx)"}[htmx], func(t *testing.T) {
				e := newEnv(t, func(c *Config) { c.UpstreamTimeout = 300 * time.Millisecond })
				e.orders.add(upstream.Order{ID: "ord-run", Status: upstream.StatusPending, Currency: "EUR", PlacedAt: time.Now()})
				c := newClient(t, e.srv)
				c.token()
				tc.hang(e)
				r := c.post(tc.path, tc.form, htmx)
				if r.Code != http.StatusServiceUnavailable {
					t.Errorf("status: got %d, want 503", r.Code)
				}
				mustContain(t, tc.name, r.Body, "may or may not be", tc.want)
				mustNotContain(t, tc.name, r.Body, "not restocked", "was not placed", "Not cancelled", "not changed")
				if !tc.done(e) {
					t.Errorf("the fake did not get the change")
				}
				if tc.name == "place an order" {
					mustContain(t, tc.name, r.Body, `name="idempotency_key" value="key-1"`, `href="/orders"`)
				}
			})
		}
	}
	// A service that cannot be reached did nothing, and the console says so.
	e := newEnv(t, allDown(t))
	c := newClient(t, e.srv)
	c.get("/stock", false) // for the CSRF cookie: the page has no form
	r := c.post("/stock/SKU-5/restock", url.Values{"quantity": {"7"}}, true)
	mustContain(t, "restock with inventory down", r.Body, "SKU-5 not restocked: inventory is down")
	mustNotContain(t, "restock with inventory down", r.Body, "may or may not")
}
