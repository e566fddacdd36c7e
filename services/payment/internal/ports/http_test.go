package ports_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/services/payment/internal/app"
	"github.com/orderflow/orderflow/services/payment/internal/domain"
	"github.com/orderflow/orderflow/services/payment/internal/ports"
)

// books answers the queries with nothing and records the filters they
// were asked with. The commands' parts are left nil: no route calls them.
type books struct {
	app.UnitOfWork
	app.Gateway
	app.ReadModel

	mu      sync.Mutex
	filters []app.Filter
}

func (b *books) asked(f app.Filter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.filters = append(b.filters, f)
}

func (b *books) Records(_ context.Context, f app.Filter) ([]app.GatewayRecord, error) {
	b.asked(f)
	return []app.GatewayRecord{}, nil
}

func (b *books) Payments(_ context.Context, f app.Filter) ([]domain.Payment, error) {
	b.asked(f)
	return []domain.Payment{}, nil
}

func (b *books) Ledger(_ context.Context, f app.Filter) ([]app.LedgerEntry, error) {
	b.asked(f)
	return []app.LedgerEntry{}, nil
}

func (b *books) Totals(context.Context) (app.Totals, error) { return app.Totals{}, nil }

func newServer(t *testing.T) (*admin.Server, *books) {
	t.Helper()
	b := &books{}
	a, err := app.New(b, b, b)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Service: "payment", Routes: ports.NewHTTP(a).Mount})
	if err != nil {
		t.Fatal(err)
	}
	return srv, b
}

// A misspelt, repeated or empty query parameter is a 400 problem naming
// it, and no list is read: ?orderid= must not answer with the whole book.
func TestQueryParametersAreChecked(t *testing.T) {
	srv, b := newServer(t)
	tests := []struct {
		path, field, detail string
	}{
		{"/gateway?orderid=o-1", "orderid", `unknown query parameter "orderid" (known: order_id, limit)`},
		{"/payments?order=o-1", "order", `unknown query parameter "order" (known: order_id, limit)`},
		{"/ledger?order_id=o-1&limt=5", "limt", `unknown query parameter "limt" (known: order_id, limit)`},
		{"/gateway?order_id=o-1&order_id=o-2", "order_id", "query parameter order_id is given 2 times; give it once"},
		{"/gateway?order_id=", "order_id", "query parameter order_id is empty; leave it out, or give it a value"},
		{"/payments?limit=", "limit", "query parameter limit is empty; leave it out, or give it a value"},
		{"/payments?limit=0", "limit", `must be an integer from 1 to 100000, got "0"`},
		{"/ledger?limit=x", "limit", `must be an integer from 1 to 100000, got "x"`},
		{"/state?verbose=1", "verbose", `unknown query parameter "verbose" (this route takes none)`},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			var p admin.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("got %d %s (%v), want a problem", rec.Code, rec.Body, err)
			}
			if rec.Code != 400 || rec.Header().Get("Content-Type") != admin.ProblemContentType {
				t.Errorf("got %d %q, want 400 %s", rec.Code, rec.Header().Get("Content-Type"), admin.ProblemContentType)
			}
			if p.Field != tc.field || p.Detail != tc.field+": "+tc.detail {
				t.Errorf("got field %q detail %q, want %q %q", p.Field, p.Detail, tc.field, tc.field+": "+tc.detail)
			}
		})
	}
	if len(b.filters) != 0 {
		t.Errorf("lists read for refused requests: got %+v, want none", b.filters)
	}

	for _, path := range []string{"/gateway?order_id=o-1&limit=5", "/payments", "/ledger?limit=1", "/state"} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			t.Errorf("GET %s: got %d %s, want 200", path, rec.Code, rec.Body)
		}
	}
	if want := (app.Filter{OrderID: "o-1", Limit: 5}); len(b.filters) == 0 || b.filters[0] != want {
		t.Errorf("filter of /gateway?order_id=o-1&limit=5: got %+v, want %+v first", b.filters, want)
	}
}

// pinned is a read model that answers with one payment of each shape and
// two ledger entries.
type pinned struct{ books }

func (p *pinned) Payments(context.Context, app.Filter) ([]domain.Payment, error) {
	return []domain.Payment{
		{ID: "pay_1", OrderID: "o-1", CustomerID: "c-1", AmountCents: 4999, Currency: "EUR", Status: domain.StatusCharged},
		{OrderID: "o-2", AmountCents: 0, Currency: "EUR", Status: domain.StatusVoided, Reason: domain.ReasonVoided},
	}, nil
}

func (p *pinned) Ledger(context.Context, app.Filter) ([]app.LedgerEntry, error) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 500, time.UTC)
	return []app.LedgerEntry{
		{ID: 1, Entry: domain.Entry{PaymentID: "pay_1", OrderID: "o-1", Kind: domain.EntryCharge, AmountCents: 4999, Currency: "EUR"}, RecordedAt: at},
		{ID: 2, Entry: domain.Entry{PaymentID: "pay_1", OrderID: "o-1", Kind: domain.EntryRefund, AmountCents: -4999, Currency: "EUR"}, RecordedAt: at},
	}, nil
}

// The JSON of /payments and /ledger, field by field: the console and the
// e2e harness read it, so it changes only on purpose.
func TestPaymentsAndLedgerJSON(t *testing.T) {
	p := &pinned{}
	a, err := app.New(p, p, p)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Service: "payment", Routes: ports.NewHTTP(a).Mount})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/payments": `[{"payment_id":"pay_1","order_id":"o-1","customer_id":"c-1","amount_cents":4999,"currency":"EUR","status":"CHARGED"},` +
			`{"order_id":"o-2","amount_cents":0,"currency":"EUR","status":"VOIDED","reason":"order refunded before it was charged"}]`,
		"/ledger": `[{"id":1,"payment_id":"pay_1","order_id":"o-1","kind":"charge","amount_cents":4999,"currency":"EUR","recorded_at":"2026-03-01T12:00:00.0000005Z"},` +
			`{"id":2,"payment_id":"pay_1","order_id":"o-1","kind":"refund","amount_cents":-4999,"currency":"EUR","recorded_at":"2026-03-01T12:00:00.0000005Z"}]`,
	} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if got := strings.TrimSpace(rec.Body.String()); rec.Code != 200 || got != want {
			t.Errorf("GET %s: got %d %s, want 200 %s", path, rec.Code, got, want)
		}
	}
}
