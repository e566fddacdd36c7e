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
	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
	"github.com/orderflow/orderflow/services/inventory/internal/domain"
	"github.com/orderflow/orderflow/services/inventory/internal/ports"
)

// store is inventory's storage for these tests, read model, unit of work
// and transaction in one: SKU-1 in stock, order o-1 reserved. It records
// each call, so a test sees whether a refused request touched it.
type store struct {
	mu    sync.Mutex
	calls []string
}

func (s *store) called(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, name)
}

func (s *store) ListStock(context.Context) ([]domain.Stock, error) {
	s.called("ListStock")
	return []domain.Stock{{SKU: "SKU-1", Available: 5, Initial: 5}}, nil
}

func (s *store) Reservation(_ context.Context, orderID string) (*domain.Reservation, error) {
	s.called("Reservation")
	if orderID != "o-1" {
		return nil, nil
	}
	return &domain.Reservation{OrderID: orderID, Status: domain.StatusReserved}, nil
}

func (s *store) ReservationCounts(context.Context) (map[domain.Status]int, error) {
	s.called("ReservationCounts")
	return map[domain.Status]int{domain.StatusReserved: 1}, nil
}

func (s *store) Do(ctx context.Context, _ string, fn func(context.Context, app.Tx) error) (bool, error) {
	s.called("Do")
	return false, fn(ctx, s)
}

func (s *store) DoRequest(ctx context.Context, fn func(context.Context, app.Tx) error) error {
	s.called("DoRequest")
	return fn(ctx, s)
}

func (s *store) Stock(_ context.Context, skus []string) (map[string]domain.Stock, error) {
	s.called("Stock")
	return map[string]domain.Stock{"SKU-1": {SKU: "SKU-1", Available: 5, Initial: 5}}, nil
}

func (s *store) SaveReservation(context.Context, domain.Reservation) error {
	s.called("SaveReservation")
	return nil
}

func (s *store) SaveStock(context.Context, []domain.Stock) error {
	s.called("SaveStock")
	return nil
}

func (s *store) Emit(context.Context, contracts.Message) error {
	s.called("Emit")
	return nil
}

// RestockKey knows one key, "used", sent with a restock of SKU-1 by 5.
func (s *store) RestockKey(_ context.Context, key string) (app.RestockKey, bool, error) {
	s.called("RestockKey")
	if key != "used" {
		return app.RestockKey{}, false, nil
	}
	return app.RestockKey{Key: key, SKU: "SKU-1", Quantity: 5, CreatedAt: time.Now()}, true, nil
}

func (s *store) SaveRestockKey(context.Context, app.RestockKey) error {
	s.called("SaveRestockKey")
	return nil
}

func (s *store) PurgeRestockKeys(context.Context, time.Time) error {
	s.called("PurgeRestockKeys")
	return nil
}

// A query parameter on any of inventory's routes (none takes one) is a
// 400 problem naming it, and nothing is read or written: GET
// /stock?sku=SKU-1 must not answer with every SKU.
func TestQueryParametersAreRefused(t *testing.T) {
	s := &store{}
	a, err := app.New(s, s, app.Config{RestockKeyRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Service: "inventory", Routes: ports.NewHTTP(a).Mount})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		srv.ServeHTTP(rec, req)
		return rec
	}
	tests := []struct {
		method, path, body, field, detail string
	}{
		{"GET", "/stock?sku=SKU-1", "", "sku", `unknown query parameter "sku" (this route takes none)`},
		{"GET", "/stock?sku=", "", "sku", `unknown query parameter "sku" (this route takes none)`},
		{"POST", "/stock/SKU-1/restock?quantity=5", `{"quantity":1}`, "quantity", `unknown query parameter "quantity" (this route takes none)`},
		{"GET", "/state?verbose=1", "", "verbose", `unknown query parameter "verbose" (this route takes none)`},
		{"GET", "/reservations/o-1?status=RESERVED", "", "status", `unknown query parameter "status" (this route takes none)`},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := do(tc.method, tc.path, tc.body)
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
	if len(s.calls) != 0 {
		t.Errorf("storage used by refused requests: got %v, want nothing", s.calls)
	}

	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/stock", ""},
		{"POST", "/stock/SKU-1/restock", `{"quantity":1}`},
		{"GET", "/state", ""},
		{"GET", "/reservations/o-1", ""},
	} {
		if rec := do(tc.method, tc.path, tc.body); rec.Code != 200 {
			t.Errorf("%s %s: got %d %s, want 200", tc.method, tc.path, rec.Code, rec.Body)
		}
	}
}

// A restock body is read as strictly as the order API's: a field name in
// another case ("Quantity", which encoding/json would take for quantity),
// a field given twice and invalid UTF-8 are a 400 problem, and nothing is
// restocked.
func TestRestockBodyIsReadStrictly(t *testing.T) {
	s := &store{}
	a, err := app.New(s, s, app.Config{RestockKeyRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Service: "inventory", Routes: ports.NewHTTP(a).Mount})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		body, field, detail string
	}{
		{`{"Quantity":5}`, "Quantity", `Quantity: is not a known field; did you mean "quantity"? (field names are case-sensitive)`},
		{`{"quantity":5,"quantity":7}`, "quantity", "quantity: is given more than once; give each field once"},
		{"{\"quantity\":5,\"x\xff\":1}", "", "request body is not valid UTF-8: byte 0xff at offset 16"},
	}
	for _, tc := range tests {
		t.Run(tc.body, func(t *testing.T) {
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest("POST", "/stock/SKU-1/restock", strings.NewReader(tc.body)))
			var p admin.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("got %d %s (%v), want a problem", rec.Code, rec.Body, err)
			}
			if rec.Code != 400 || p.Field != tc.field || p.Detail != tc.detail {
				t.Errorf("got %d field %q detail %q, want 400 field %q detail %q", rec.Code, p.Field, p.Detail, tc.field, tc.detail)
			}
		})
	}
	if len(s.calls) != 0 {
		t.Errorf("storage used by refused requests: got %v, want nothing", s.calls)
	}
}

// A restock whose Idempotency-Key was sent before with another restock is
// refused as POST /orders refuses a key reused with another body: 422,
// problem type idempotency-key-reused, naming the header; the same restock
// again is a replay.
func TestReusedIdempotencyKeyIsRefused(t *testing.T) {
	s := &store{}
	a, err := app.New(s, s, app.Config{RestockKeyRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Service: "inventory", Routes: ports.NewHTTP(a).Mount})
	if err != nil {
		t.Fatal(err)
	}
	restock := func(body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/stock/SKU-1/restock", strings.NewReader(body))
		req.Header.Set("Idempotency-Key", "used")
		srv.ServeHTTP(rec, req)
		return rec
	}
	rec := restock(`{"quantity":7}`)
	var p admin.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("got %d %s (%v), want a problem", rec.Code, rec.Body, err)
	}
	if rec.Code != 422 || rec.Header().Get("Content-Type") != admin.ProblemContentType {
		t.Errorf("got %d %q, want 422 %s", rec.Code, rec.Header().Get("Content-Type"), admin.ProblemContentType)
	}
	if p.Type != "urn:orderflow:problem:idempotency-key-reused" || p.Title != "Idempotency key reused" || p.Status != 422 || p.Field != "Idempotency-Key" {
		t.Errorf("problem: got %+v, want type urn:orderflow:problem:idempotency-key-reused, title Idempotency key reused, field Idempotency-Key", p)
	}
	const detail = "Idempotency-Key: was sent before with another restock (SKU-1 by 5); send a new key for this one"
	if p.Detail != detail {
		t.Errorf("detail:\n got %q\nwant %q", p.Detail, detail)
	}
	if rec := restock(`{"quantity":5}`); rec.Code != 200 || rec.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("the same restock again: got %d replayed %q, want 200 replayed true", rec.Code, rec.Header().Get("Idempotent-Replayed"))
	}
	for _, c := range s.calls {
		if c == "SaveStock" || c == "SaveRestockKey" {
			t.Errorf("storage calls: got %v, want no SaveStock nor SaveRestockKey", s.calls)
			break
		}
	}
}

// A refused restock's problem says what is wrong with which field, in a
// client's words: no Go type names ("Go struct field .quantity of type
// int"), no internal prefixes ("restock SKU-1: invalid quantity: ",
// "not found: restock NOPE: ").
func TestRestockProblemDetails(t *testing.T) {
	s := &store{}
	a, err := app.New(s, s, app.Config{RestockKeyRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Service: "inventory", Routes: ports.NewHTTP(a).Mount})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, body    string
		status        int
		field, detail string
	}{
		{"/stock/SKU-1/restock", `{"quantity":1.5}`, 400, "quantity", "quantity: must be of type integer, got number 1.5"},
		{"/stock/SKU-1/restock", `{"quantity":"5"}`, 400, "quantity", "quantity: must be of type integer, got string"},
		{"/stock/SKU-1/restock", `{"quantity":9223372036854775808}`, 400, "quantity",
			"quantity: must be an integer from -9223372036854775808 to 9223372036854775807, got 9223372036854775808"},
		{"/stock/SKU-1/restock", `{"quantity":1e400}`, 400, "quantity",
			"quantity: must be an integer from -9223372036854775808 to 9223372036854775807, got 1e400"},
		{"/stock/SKU-1/restock", `{"quantity":true}`, 400, "quantity", "quantity: must be of type integer, got boolean"},
		{"/stock/SKU-1/restock", `{"quantity":0}`, 400, "quantity", "quantity: must be at least 1, got 0"},
		{"/stock/SKU-1/restock", `{"quantity":-3e0}`, 400, "quantity", "quantity: must be at least 1, got -3"},
		{"/stock/SKU-1/restock", `{"quantity":-3}`, 400, "quantity", "quantity: must be at least 1, got -3"},
		{"/stock/SKU-1/restock", `{"quantity":9223372036854775807}`, 400, "quantity",
			"quantity: 9223372036854775807 more units would take the stock of SKU-1 past 9223372036854775807"},
		{"/stock/SKU-1/restock", `{}`, 400, "quantity", `quantity: is required, e.g. {"quantity": 10}`},
		{"/stock/SKU-1/restock", `{"quantity":null}`, 400, "quantity", `quantity: is required, e.g. {"quantity": 10}`},
		{"/stock/NOPE/restock", `{"quantity":5}`, 404, "sku", `sku: inventory holds no SKU "NOPE"`},
		{"/reservations/o-2", "", 404, "order_id", `order_id: no reservation for order "o-2"`},
	}
	for _, tc := range tests {
		t.Run(tc.path+" "+tc.body, func(t *testing.T) {
			method := "POST"
			if tc.body == "" {
				method = "GET"
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(method, tc.path, strings.NewReader(tc.body)))
			var p admin.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != tc.status {
				t.Fatalf("got %d %s (%v), want a %d problem", rec.Code, rec.Body, err, tc.status)
			}
			if p.Field != tc.field || p.Detail != tc.detail {
				t.Errorf("got field %q detail %q\nwant field %q detail %q", p.Field, p.Detail, tc.field, tc.detail)
			}
		})
	}
}
