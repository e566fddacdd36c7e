package web

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/orderflow/orderflow/services/console/internal/upstream"
)

// hostile holds every character that means something in a URL path: a
// value put in a path unescaped leads elsewhere, here to the route that
// replays every dead letter.
const hostile = "x/../../../queue/dlq/replay? #50%"

// formAction returns the decoded action and hx-post of the form whose
// action matches re, as a browser reads them.
func formAction(t *testing.T, body string, re string) string {
	t.Helper()
	m := regexp.MustCompile(`action="(` + re + `)" hx-post="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no form action matching %s in:\n%s", re, abbreviate(body))
	}
	action, hxPost := html.UnescapeString(m[1]), html.UnescapeString(m[2])
	if action != hxPost {
		t.Errorf("hx-post: got %q, want the action %q", hxPost, action)
	}
	return action
}

// A SKU, a fault flag or an order id is one path segment of its form's
// URL, whatever it holds, and the console decodes it back.
func TestValuesInPathsAreEscaped(t *testing.T) {
	e := newEnv(t)
	inv, pay := e.admins[ServiceInventory], e.admins[ServicePayment]
	inv.stock = append(inv.stock, upstream.Stock{SKU: hostile, Available: 1, Initial: 1})
	pay.flags = append(pay.flags, flag(hostile, upstream.FaultRate, "0"))
	e.orders.add(upstream.Order{ID: "ord/../x?#%", Status: upstream.StatusPending, Currency: "EUR", PlacedAt: time.Now()})
	putDeadLetter(t, e, "payment.events", "order", []byte(`{}`))
	c := newClient(t, e.srv)

	r := c.post(formAction(t, c.get("/stock", false).Body, `/stock/x[^"]*/restock`), url.Values{"quantity": {"5"}}, true)
	if r.Code != http.StatusOK {
		t.Errorf("restock: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
	}
	if _, _, restocks := inv.calls(); len(restocks) != 1 || restocks[0] != hostile+"+5" {
		t.Errorf("restocks: got %q, want [%q]", restocks, hostile+"+5")
	}

	faults := c.get("/faults", false).Body
	r = c.post(formAction(t, faults, `/faults/payment/x[^"]*[^t]`), url.Values{"value": {"0.5"}}, true)
	if r.Code != http.StatusOK {
		t.Errorf("set flag: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
	}
	r = c.post(formAction(t, c.get("/faults", false).Body, `/faults/payment/x[^"]*/reset`), nil, true)
	if r.Code != http.StatusOK {
		t.Errorf("reset flag: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
	}
	if sets, resets, _ := pay.calls(); len(sets) != 1 || sets[0] != hostile+"=0.5" || len(resets) != 1 || resets[0] != hostile {
		t.Errorf("flag changes: got sets %q resets %q, want %q set to 0.5 then reset", sets, resets, hostile)
	}

	page := c.get("/orders/"+url.PathEscape("ord/../x?#%"), false)
	if page.Code != http.StatusOK {
		t.Fatalf("order page: got %d, want 200\n%s", page.Code, abbreviate(page.Body))
	}
	r = c.post(formAction(t, page.Body, `/orders/[^"]*/cancel`), url.Values{"reason": {"r"}}, true)
	if r.Code != http.StatusOK {
		t.Errorf("cancel: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
	}
	if _, cancels, _ := e.orders.seen(); len(cancels) != 1 || cancels[0] != "ord/../x?#%:r" {
		t.Errorf("cancels: got %q, want the order ord/../x?#%%", cancels)
	}
	mustContain(t, "orders list", c.get("/orders/live", false).Body, `href="/orders/ord%2F..%2Fx%3F%23%25"`)

	if n := deadLetterCount(t, e); n != 1 {
		t.Errorf("dead letters: got %d, want the 1 there was (none replayed)", n)
	}
}
