package ports_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/services/shipping/internal/app"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
	"github.com/orderflow/orderflow/services/shipping/internal/ports"
)

// books answers the queries with nothing and records the filters they
// were asked with. The commands' parts are left nil: no route calls them.
type books struct {
	app.UnitOfWork
	app.Carrier
	app.ReadModel

	mu      sync.Mutex
	filters []app.Filter
}

func (b *books) asked(f app.Filter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.filters = append(b.filters, f)
}

func (b *books) Records(_ context.Context, f app.Filter) ([]app.CarrierRecord, error) {
	b.asked(f)
	return []app.CarrierRecord{}, nil
}

func (b *books) Shipments(_ context.Context, f app.Filter) ([]domain.Shipment, error) {
	b.asked(f)
	return []domain.Shipment{}, nil
}

func (b *books) Counts(context.Context) (map[domain.Status]int, error) {
	return map[domain.Status]int{}, nil
}

func newServer(t *testing.T) (*admin.Server, *books) {
	t.Helper()
	b := &books{}
	a, err := app.New(b, b, b)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Service: "shipping", Routes: ports.NewHTTP(a).Mount})
	if err != nil {
		t.Fatal(err)
	}
	return srv, b
}

// A misspelt, repeated or empty query parameter is a 400 problem naming
// it, and no list is read: ?orderid= must not answer with every booking.
func TestQueryParametersAreChecked(t *testing.T) {
	srv, b := newServer(t)
	tests := []struct {
		path, field, detail string
	}{
		{"/carrier?orderid=o-1", "orderid", `unknown query parameter "orderid" (known: order_id, limit)`},
		{"/shipments?order=o-1", "order", `unknown query parameter "order" (known: order_id, limit)`},
		{"/carrier?order_id=o-1&order_id=o-2", "order_id", "query parameter order_id is given 2 times; give it once"},
		{"/carrier?order_id=", "order_id", "query parameter order_id is empty; leave it out, or give it a value"},
		{"/shipments?limit=", "limit", "query parameter limit is empty; leave it out, or give it a value"},
		{"/shipments?limit=100001", "limit", `must be an integer from 1 to 100000, got "100001"`},
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

	for _, path := range []string{"/carrier?order_id=o-1&limit=5", "/shipments", "/state"} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			t.Errorf("GET %s: got %d %s, want 200", path, rec.Code, rec.Body)
		}
	}
	if want := (app.Filter{OrderID: "o-1", Limit: 5}); len(b.filters) == 0 || b.filters[0] != want {
		t.Errorf("filter of /carrier?order_id=o-1&limit=5: got %+v, want %+v first", b.filters, want)
	}
}

// pinned is a read model that answers with a booked shipment and a failed
// one.
type pinned struct{ books }

func (p *pinned) Shipments(context.Context, app.Filter) ([]domain.Shipment, error) {
	return []domain.Shipment{
		{ID: "shp_1", OrderID: "o-1", Status: domain.StatusScheduled, Carrier: "ACME", TrackingNumber: "TN1",
			Lines:   []domain.Line{{SKU: "SKU-1", Quantity: 2}},
			Address: domain.Address{Name: "Ada", Line1: "1 Main St", Line2: "Flat 2", City: "Paris", PostalCode: "75001", Country: "FR"}},
		{OrderID: "o-2", Status: domain.StatusFailed, Address: domain.Address{Name: "Bob", Line1: "2 High St", City: "Leeds", Country: "GB"},
			Reason: "no carrier"},
	}, nil
}

// The JSON of /shipments, field by field: the console and the e2e
// harness read it, so it changes only on purpose.
func TestShipmentsJSON(t *testing.T) {
	p := &pinned{}
	a, err := app.New(p, p, p)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Service: "shipping", Routes: ports.NewHTTP(a).Mount})
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"shipment_id":"shp_1","order_id":"o-1","status":"SCHEDULED","carrier":"ACME","tracking_number":"TN1",` +
		`"lines":[{"sku":"SKU-1","quantity":2}],` +
		`"address":{"name":"Ada","line1":"1 Main St","line2":"Flat 2","city":"Paris","postal_code":"75001","country":"FR"}},` +
		`{"order_id":"o-2","status":"FAILED","address":{"name":"Bob","line1":"2 High St","city":"Leeds","country":"GB"},"reason":"no carrier"}]`
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/shipments", nil))
	if got := strings.TrimSpace(rec.Body.String()); rec.Code != 200 || got != want {
		t.Errorf("GET /shipments: got %d %s, want 200 %s", rec.Code, got, want)
	}
}
