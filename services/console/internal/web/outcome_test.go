package web

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
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
		{"restock", "/stock/SKU-5/restock", url.Values{"quantity": {"7"}, "idempotency_key": {"key-r"}},
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
				if tc.name == "restock" {
					// The row keeps the key and the quantity: pressing
					// Restock again repeats the same restock, which
					// inventory applies once.
					mustContain(t, tc.name, r.Body, `name="idempotency_key" value="key-r"`, `value="7"`)
					e.admins[ServiceInventory].mu.Lock()
					e.admins[ServiceInventory].hang = false
					e.admins[ServiceInventory].mu.Unlock()
					if r := c.post(tc.path, tc.form, htmx); r.Code != http.StatusOK && r.Code != http.StatusSeeOther {
						t.Errorf("restock pressed again: got %d, want 200 or 303", r.Code)
					}
					if _, _, restocks := e.admins[ServiceInventory].calls(); len(restocks) != 1 {
						t.Errorf("restocks after pressing Restock again with the same key: got %v, want one", restocks)
					}
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

// A service that did the change and answered 200 with something else than
// the JSON expected: the outcome is unknown, not a refusal. A restock
// keeps its key, so that pressing Restock again adds the units once.
func TestUnreadableSuccessIsAnUnknownOutcome(t *testing.T) {
	tests := []struct {
		name string
		path string
		form url.Values
		fake func(e *env) (mu *sync.Mutex, unreadable *bool)
		done func(e *env) bool
		want string
	}{
		{"restock", "/stock/SKU-5/restock", url.Values{"quantity": {"7"}, "idempotency_key": {"key-r"}},
			func(e *env) (*sync.Mutex, *bool) {
				return &e.admins[ServiceInventory].mu, &e.admins[ServiceInventory].unreadable
			},
			func(e *env) bool { _, _, r := e.admins[ServiceInventory].calls(); return len(r) == 1 },
			"SKU-5 may or may not be restocked: inventory answered 200 to POST /stock/SKU-5/restock, but the answer is not the expected JSON"},
		{"place an order", "/orders", url.Values{"customer_id": {"c-1"}, "idempotency_key": {"key-1"}, "sku": {"SKU-1"}, "quantity": {"1"}},
			func(e *env) (*sync.Mutex, *bool) { return &e.orders.mu, &e.orders.unreadable },
			func(e *env) bool { p, _, _ := e.orders.seen(); return len(p) == 1 },
			"The order may or may not be placed: order service answered 201 to POST /orders"},
		{"cancel an order", "/orders/ord-run/cancel", nil,
			func(e *env) (*sync.Mutex, *bool) { return &e.orders.mu, &e.orders.unreadable },
			func(e *env) bool { _, c, _ := e.orders.seen(); return len(c) == 1 },
			"The order may or may not be cancelled: order service answered 200 to POST /orders/ord-run/cancel"},
		{"set a flag", "/faults/payment/payment_decline_rate", url.Values{"value": {"0.5"}},
			func(e *env) (*sync.Mutex, *bool) {
				return &e.admins[ServicePayment].mu, &e.admins[ServicePayment].unreadable
			},
			func(e *env) bool { s, _, _ := e.admins[ServicePayment].calls(); return len(s) == 1 },
			"payment: payment_decline_rate may or may not be changed: payment answered 200 to PUT /faults/payment_decline_rate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.orders.add(upstream.Order{ID: "ord-run", Status: upstream.StatusPending, Currency: "EUR", PlacedAt: time.Now()})
			c := newClient(t, e.srv)
			c.token()
			mu, unreadable := tc.fake(e)
			mu.Lock()
			*unreadable = true
			mu.Unlock()
			r := c.post(tc.path, tc.form, true)
			if r.Code != http.StatusServiceUnavailable {
				t.Errorf("status: got %d, want 503", r.Code)
			}
			mustContain(t, tc.name, r.Body, tc.want)
			mustNotContain(t, tc.name, r.Body, "not restocked", "was not placed", "Not cancelled", "not changed")
			if !tc.done(e) {
				t.Errorf("the fake did not get the change")
			}
			if tc.name != "restock" {
				return
			}
			key := firstGroup(regexp.MustCompile(`(?s)<tr data-sku="SKU-5">.*?name="idempotency_key" value="([^"]+)"`), r.Body)
			if key != "key-r" {
				t.Fatalf("SKU-5's key: got %q, want key-r, kept", key)
			}
			mu.Lock()
			*unreadable = false
			mu.Unlock()
			if r := c.post(tc.path, url.Values{"quantity": {"7"}, "idempotency_key": {key}}, true); r.Code != http.StatusOK {
				t.Errorf("Restock pressed again: got %d, want 200", r.Code)
			}
			if _, _, restocks := e.admins[ServiceInventory].calls(); len(restocks) != 1 {
				t.Errorf("restocks after pressing Restock again: got %v, want SKU-5+7 once", restocks)
			}
		})
	}
}

// After a restock whose outcome is unknown, the row keeps its key through
// the polls that follow, even when the table changes meanwhile: pressing
// Restock again, as the message invites, repeats the same restock, which
// inventory adds once.
func TestHeldRestockOutlivesPolls(t *testing.T) {
	rowKey := regexp.MustCompile(`(?s)<tr data-sku="SKU-5">.*?name="idempotency_key" value="([^"]+)"`)
	src := regexp.MustCompile(`hx-get="(/stock/live[^"]*)"`)
	tests := []struct {
		name string
		// change is what happens to the stock while the outcome is unknown.
		change func(inv *fakeAdmin)
		// poll is the poll's status: 204 while the table is the same.
		poll int
	}{
		{"nothing changes", func(*fakeAdmin) {}, http.StatusNoContent},
		{"another SKU is ordered", func(inv *fakeAdmin) {
			inv.mu.Lock()
			defer inv.mu.Unlock()
			inv.stock[0].Available, inv.stock[0].Reserved = 989, 11
		}, http.StatusOK},
		{"SKU-5 itself is ordered", func(inv *fakeAdmin) {
			inv.mu.Lock()
			defer inv.mu.Unlock()
			inv.stock[1].Available, inv.stock[1].Reserved = 9, 8
		}, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.UpstreamTimeout = 300 * time.Millisecond })
			inv := e.admins[ServiceInventory]
			c := newClient(t, e.srv)
			c.token()
			inv.mu.Lock()
			inv.hang = true
			inv.mu.Unlock()
			r := c.post("/stock/SKU-5/restock", url.Values{"quantity": {"7"}, "idempotency_key": {"key-r"}}, true)
			if r.Code != http.StatusServiceUnavailable {
				t.Fatalf("restock without an answer: got %d, want 503\n%s", r.Code, abbreviate(r.Body))
			}
			inv.mu.Lock()
			inv.hang = false
			inv.mu.Unlock()
			tc.change(inv)

			m := src.FindStringSubmatch(r.Body)
			if m == nil {
				t.Fatalf("no polling region in the answer:\n%s", abbreviate(r.Body))
			}
			held := r.Body
			poll := c.get(html.UnescapeString(m[1]), true)
			if poll.Code != tc.poll {
				t.Fatalf("poll: got %d, want %d\n%s", poll.Code, tc.poll, abbreviate(poll.Body))
			}
			if poll.Code == http.StatusOK {
				held = poll.Body
				mustContain(t, "poll", held, `value="7"`, `data-held="SKU-5"`)
			}
			key := firstGroup(rowKey, held)
			if key != "key-r" {
				t.Fatalf("SKU-5's key after the poll: got %q, want key-r", key)
			}
			// Restock pressed again, with what the row then holds.
			r = c.post("/stock/SKU-5/restock", url.Values{"quantity": {"7"}, "idempotency_key": {key}}, true)
			if r.Code != http.StatusOK {
				t.Fatalf("Restock pressed again: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
			}
			if _, _, restocks := inv.calls(); len(restocks) != 1 {
				t.Errorf("restocks: got %v, want SKU-5+7 once", restocks)
			}
			if key := firstGroup(rowKey, r.Body); key == "" || key == "key-r" {
				t.Errorf("SKU-5's key once the restock is known done: got %q, want a new one", key)
			}
			mustNotContain(t, "the answer once done", r.Body, "held_sku", `data-held=`)
		})
	}
}

// A held restock's row keeps its key for its quantity only: another
// quantity typed over it is another restock, sent with a new key (inventory
// refuses a key sent again with another quantity, 422), and added.
func TestHeldRestockWithAnotherQuantityIsAnotherRestock(t *testing.T) {
	for _, htmx := range []bool{true, false} {
		t.Run(map[bool]string{true: "htmx", false: "without JavaScript"}[htmx], func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.UpstreamTimeout = 300 * time.Millisecond })
			inv := e.admins[ServiceInventory]
			c := newClient(t, e.srv)
			c.token()
			inv.mu.Lock()
			inv.hang = true
			inv.mu.Unlock()
			if r := c.post("/stock/SKU-5/restock", url.Values{"quantity": {"7"}, "idempotency_key": {"key-r"}}, true); r.Code != http.StatusServiceUnavailable {
				t.Fatalf("restock without an answer: got %d, want 503\n%s", r.Code, abbreviate(r.Body))
			}
			inv.mu.Lock()
			inv.hang = false
			inv.mu.Unlock()

			// The held row's form, its quantity changed from 7 to 9.
			form := url.Values{"quantity": {"9"}, "idempotency_key": {"key-r"},
				"held_sku": {"SKU-5"}, "held_key": {"key-r"}, "held_qty": {"7"}}
			r := c.post("/stock/SKU-5/restock", form, htmx)
			if !htmx && r.Code == http.StatusSeeOther {
				r = c.get(r.Header.Get("Location"), false)
			}
			if r.Code != http.StatusOK {
				t.Fatalf("restock of 9 over the held 7: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
			}
			if _, _, restocks := inv.calls(); len(restocks) != 2 || restocks[1] != "SKU-5+9" {
				t.Errorf("restocks: got %v, want SKU-5+7 then SKU-5+9", restocks)
			}
			mustNotContain(t, "the answer", r.Body, "not restocked", `data-held=`)

			// The held 7 sent again with its key is still one restock.
			held := url.Values{"quantity": {"7"}, "idempotency_key": {"key-r"}}
			if r := c.post("/stock/SKU-5/restock", held, true); r.Code != http.StatusOK {
				t.Errorf("the held restock again: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
			}
			if _, _, restocks := inv.calls(); len(restocks) != 2 {
				t.Errorf("restocks after the held one again: got %v, want SKU-5+7 and SKU-5+9 once each", restocks)
			}
		})
	}
}

// A restock inventory refuses because its key was sent with another
// restock (a form sent twice, its quantity changed in between) says so,
// adds nothing, and leaves the row a new key to send it with.
func TestRestockWithAReusedKeySaysSo(t *testing.T) {
	e := newEnv(t)
	inv := e.admins[ServiceInventory]
	c := newClient(t, e.srv)
	if r := c.post("/stock/SKU-5/restock", url.Values{"quantity": {"7"}, "idempotency_key": {"key-1"}}, true); r.Code != http.StatusOK {
		t.Fatalf("first restock: got %d, want 200", r.Code)
	}
	r := c.post("/stock/SKU-5/restock", url.Values{"quantity": {"9"}, "idempotency_key": {"key-1"}}, true)
	if r.Code != http.StatusUnprocessableEntity {
		t.Fatalf("the same form with 9: got %d, want 422\n%s", r.Code, abbreviate(r.Body))
	}
	mustContain(t, "reused key", r.Body, "SKU-5 not restocked", "already sent another restock", `value="9"`)
	mustNotContain(t, "reused key", r.Body, "Idempotency-Key")
	key := firstGroup(regexp.MustCompile(`(?s)<tr data-sku="SKU-5">.*?name="idempotency_key" value="([^"]+)"`), r.Body)
	if key == "" || key == "key-1" {
		t.Fatalf("SKU-5's key: got %q, want a new one", key)
	}
	if r := c.post("/stock/SKU-5/restock", url.Values{"quantity": {"9"}, "idempotency_key": {key}}, true); r.Code != http.StatusOK {
		t.Errorf("restock of 9 with the new key: got %d, want 200", r.Code)
	}
	if _, _, restocks := inv.calls(); len(restocks) != 2 || restocks[1] != "SKU-5+9" {
		t.Errorf("restocks: got %v, want SKU-5+7 then SKU-5+9", restocks)
	}
}

// firstGroup returns re's first group in s, "" when re does not match.
func firstGroup(re *regexp.Regexp, s string) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// A restock held for one row stays held while another row is restocked,
// with JavaScript or without.
func TestHeldRestockOutlivesOtherRestocks(t *testing.T) {
	for _, htmx := range []bool{true, false} {
		t.Run(map[bool]string{true: "htmx", false: "without JavaScript"}[htmx], func(t *testing.T) {
			e := newEnv(t)
			c := newClient(t, e.srv)
			held := url.Values{"held_sku": {"SKU-5"}, "held_key": {"key-r"}, "held_qty": {"7"}}
			form := url.Values{"quantity": {"1"}, "idempotency_key": {"key-other"}}
			for k, v := range held {
				form[k] = v
			}
			r := c.post("/stock/SKU-1/restock", form, htmx)
			if !htmx {
				if r.Code != http.StatusSeeOther {
					t.Fatalf("restock of SKU-1: got %d, want 303", r.Code)
				}
				r = c.get(r.Header.Get("Location"), false)
			}
			if r.Code != http.StatusOK {
				t.Fatalf("restock of SKU-1: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
			}
			mustContain(t, "after restocking SKU-1", r.Body, `name="idempotency_key" value="key-r"`, `data-held="SKU-5"`,
				`held_sku=SKU-5`, `name="held_key" value="key-r"`)
		})
	}
}

// A key the order API refuses as used for other details is replaced, so
// that the next submit of the form can succeed; the message says an order
// may already be placed.
func TestReusedIdempotencyKeyIsReplaced(t *testing.T) {
	e := newEnv(t)
	c := newClient(t, e.srv)
	if r := c.post("/orders", url.Values{"customer_id": {"c-1"}, "idempotency_key": {"key-1"}, "sku": {"SKU-1"}, "quantity": {"1"}}, true); r.Code != http.StatusOK {
		t.Fatalf("first order: got %d, want 200", r.Code)
	}
	// The same form, sent back with other details (a browser's back button).
	r := c.post("/orders", url.Values{"customer_id": {"c-2"}, "idempotency_key": {"key-1"}, "sku": {"SKU-1"}, "quantity": {"1"}}, true)
	if r.Code != http.StatusUnprocessableEntity {
		t.Fatalf("reused key: got %d, want 422\n%s", r.Code, abbreviate(r.Body))
	}
	mustContain(t, "reused key", r.Body, "may already have placed an order", `href="/orders"`, `value="c-2"`)
	m := regexp.MustCompile(`name="idempotency_key" value="([^"]+)"`).FindStringSubmatch(r.Body)
	if m == nil || m[1] == "key-1" {
		t.Fatalf("the form's idempotency key: got %v, want a fresh one", m)
	}
	r = c.post("/orders", url.Values{"customer_id": {"c-2"}, "idempotency_key": {m[1]}, "sku": {"SKU-1"}, "quantity": {"1"}}, true)
	if r.Code != http.StatusOK {
		t.Fatalf("submit again: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
	}
	if placedOrders, _, _ := e.orders.seen(); len(placedOrders) != 2 || placedOrders[1].Body.CustomerID != "c-2" {
		t.Errorf("orders placed: got %+v, want c-1's then c-2's", placedOrders)
	}
}

// The cancel reason's limit counts characters, as the input's maxlength
// and the order API do: 200 two-byte letters are sent on.
func TestCancelReasonCountsCharacters(t *testing.T) {
	e := newEnv(t)
	e.orders.add(upstream.Order{ID: "ord-run", Status: upstream.StatusPending, Currency: "EUR", PlacedAt: time.Now()})
	c := newClient(t, e.srv)
	reason := strings.Repeat("ж", maxReason)
	if r := c.post("/orders/ord-run/cancel", url.Values{"reason": {reason}}, true); r.Code != http.StatusOK {
		t.Fatalf("cancel with 200 two-byte letters: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
	}
	if _, cancels, _ := e.orders.seen(); len(cancels) != 1 || cancels[0] != "ord-run:"+reason {
		t.Errorf("cancels: got %d, want one with the 200-letter reason", len(cancels))
	}
}

// The page of an order the order service does not know does not poll: the
// order will not appear. "counts" is one: GET /orders/counts of the order
// API answers, but with no order.
func TestUnknownOrderPageDoesNotPoll(t *testing.T) {
	e := newEnv(t)
	c := newClient(t, e.srv)
	for _, id := range []string{"ord-nope", "counts"} {
		for _, path := range []string{"/orders/" + id, "/orders/" + id + "/live"} {
			r := c.get(path, false)
			mustContain(t, path, r.Body, "<h1>Order not found</h1>", `<div id="order-live" class="live">`) // no hx-get, no trigger
			if path == "/orders/"+id && r.Code != http.StatusNotFound {
				t.Errorf("%s: got %d, want 404", path, r.Code)
			}
		}
	}
}
