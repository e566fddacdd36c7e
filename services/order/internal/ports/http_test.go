package ports_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/ordertest"
	"github.com/orderflow/orderflow/services/order/internal/ports"
)

type api struct {
	t   *testing.T
	env *ordertest.Env
	h   http.Handler
}

func newAPI(t *testing.T, cfg ports.HTTPConfig) *api {
	return newAPIWith(t, cfg, ordertest.Options{})
}

func newAPIWith(t *testing.T, cfg ports.HTTPConfig, opts ordertest.Options) *api {
	env := ordertest.New(t, opts)
	cfg.App = env.App
	h, err := ports.NewHTTPHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &api{t: t, env: env, h: h}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (a *api) do(method, path, body string, header map[string]string) response {
	a.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func (r response) order(t *testing.T) app.OrderView {
	t.Helper()
	var v app.OrderView
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode order %s: %v", r.body, err)
	}
	return v
}

func (r response) problem(t *testing.T) ports.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type: got %q, want application/problem+json (body %s)", ct, r.body)
	}
	var p ports.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode problem %s: %v", r.body, err)
	}
	if p.Status != r.status || p.Title == "" || p.Type == "" {
		t.Errorf("problem: got %+v, want status %d, a title and a type", p, r.status)
	}
	return p
}

const validOrder = `{"customer_id":"c-1","items":[{"sku":"SKU-1","quantity":2}]}`

// At the open-order limit POST /orders answers 503 with Retry-After and a
// problem saying to send it again; the same key, once there is room,
// places the order.
func TestPlaceOrderAtTheOpenLimit(t *testing.T) {
	logs := &ordertest.Logs{}
	a := newAPIWith(t, ports.HTTPConfig{Logger: slog.New(logs)}, ordertest.Options{MaxOpenOrders: 1})
	if r := a.do("POST", "/orders", validOrder, map[string]string{"Idempotency-Key": "k-1"}); r.status != 201 {
		t.Fatalf("first order: got %d %s, want 201", r.status, r.body)
	}
	r := a.do("POST", "/orders", validOrder, map[string]string{"Idempotency-Key": "k-2"})
	if r.status != 503 {
		t.Fatalf("second order at the limit: got %d %s, want 503", r.status, r.body)
	}
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After: got %q, want 1", got)
	}
	if p := r.problem(t); p.Type != "urn:orderflow:problem:too-many-open-orders" || !strings.Contains(p.Detail, "again") {
		t.Errorf("problem: got %+v, want type too-many-open-orders and a detail saying to send it again", p)
	}
	for _, rec := range logs.Records() {
		if rec.Level >= slog.LevelWarn {
			t.Errorf("log level of the refusal: got a %v record, want below warn (designed back-pressure, not a failure)", rec.Level)
		}
	}
}

func TestOrderRoutes(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})

	res := a.do("POST", "/orders", validOrder, map[string]string{"Idempotency-Key": "k-1"})
	if res.status != http.StatusCreated {
		t.Fatalf("POST /orders: got %d %s, want 201", res.status, res.body)
	}
	o := res.order(t)
	if o.ID == "" || o.Status != "PENDING" || o.TotalCents != 3000 || res.header.Get("Location") != "/orders/"+o.ID {
		t.Errorf("POST /orders: got %+v Location %q, want a PENDING order of 3000 at /orders/{id}", o, res.header.Get("Location"))
	}
	if res.header.Get("X-Request-Id") == "" {
		t.Error("POST /orders: no X-Request-Id")
	}

	replay := a.do("POST", "/orders", validOrder, map[string]string{"Idempotency-Key": "k-1"})
	if replay.status != http.StatusOK || replay.order(t).ID != o.ID || replay.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replayed POST: got %d %s, want 200 with the same order and Idempotent-Replayed", replay.status, replay.body)
	}

	withAddr := a.do("POST", "/orders", `{"customer_id":"c-2","items":[{"sku":"SKU-2","quantity":1}],
		"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"Berlin","country":"DE"}}`, nil)
	if withAddr.status != http.StatusCreated || withAddr.order(t).ShippingAddress.City != "Berlin" {
		t.Errorf("POST with address: got %d %s, want 201 shipping to Berlin", withAddr.status, withAddr.body)
	}

	tests := []struct {
		name, method, path, body string
		status                   int
		check                    func(t *testing.T, r response)
	}{
		{"get order", "GET", "/orders/" + o.ID, "", 200, func(t *testing.T, r response) {
			v := r.order(t)
			if v.ID != o.ID || v.SagaStep != "reserve_stock" || len(v.Items) != 1 || v.PlacedAt.IsZero() {
				t.Errorf("got %+v, want the order with its step, items and times", v)
			}
		}},
		// A client may escape a character that needs none (%2D for '-').
		{"get order, id percent-encoded", "GET", "/orders/" + strings.ReplaceAll(o.ID, "-", "%2D"), "", 200, func(t *testing.T, r response) {
			if v := r.order(t); v.ID != o.ID {
				t.Errorf("got order %q, want %q", v.ID, o.ID)
			}
		}},
		{"events", "GET", "/orders/" + o.ID + "/events", "", 200, func(t *testing.T, r response) {
			var body struct {
				OrderID string            `json:"order_id"`
				Events  []app.EventRecord `json:"events"`
			}
			if err := json.Unmarshal(r.body, &body); err != nil || len(body.Events) != 1 || body.Events[0].Type != "OrderPlaced" {
				t.Errorf("got %s, %v, want one OrderPlaced event", r.body, err)
			}
		}},
		{"list", "GET", "/orders?limit=1", "", 200, func(t *testing.T, r response) {
			var p app.OrderPage
			if err := json.Unmarshal(r.body, &p); err != nil || len(p.Orders) != 1 || p.NextCursor == "" {
				t.Errorf("got %s, %v, want one order and a next cursor", r.body, err)
			}
		}},
		{"list by status", "GET", "/orders?status=pending", "", 200, func(t *testing.T, r response) {
			var p app.OrderPage
			if err := json.Unmarshal(r.body, &p); err != nil || len(p.Orders) != 2 || p.NextCursor != "" {
				t.Errorf("got %s, %v, want both PENDING orders", r.body, err)
			}
		}},
		{"counts", "GET", "/orders/counts", "", 200, func(t *testing.T, r response) {
			var c struct {
				Counts map[string]int64 `json:"counts"`
				Total  int64            `json:"total"`
			}
			if err := json.Unmarshal(r.body, &c); err != nil || c.Counts["PENDING"] != 2 || c.Total != 2 {
				t.Errorf("got %s, %v, want 2 PENDING of 2", r.body, err)
			}
		}},
		{"healthz", "GET", "/healthz", "", 200, nil},
		{"readyz", "GET", "/readyz", "", 200, nil},
		{"openapi", "GET", "/openapi.yaml", "", 200, func(t *testing.T, r response) {
			if !strings.HasPrefix(string(r.body), "openapi: 3.1.0") {
				t.Errorf("got %.40q, want the OpenAPI document", r.body)
			}
		}},
		{"cancel", "POST", "/orders/" + o.ID + "/cancel", `{"reason":"changed my mind"}`, 200, func(t *testing.T, r response) {
			if v := r.order(t); v.Status != "CANCELLING" || v.Reason != "changed my mind" {
				t.Errorf("got %s %q, want CANCELLING with the reason", v.Status, v.Reason)
			}
		}},
		{"cancel again without a body", "POST", "/orders/" + o.ID + "/cancel", "", 200, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(tc.method, tc.path, tc.body, nil)
			if r.status != tc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.status)
			}
			if ct := r.header.Get("Content-Type"); tc.path != "/openapi.yaml" && !strings.HasPrefix(ct, "application/json") {
				t.Errorf("content type: got %q, want application/json", ct)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestProblems(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{BodyLimit: 1024})
	first := a.do("POST", "/orders", validOrder, map[string]string{"Idempotency-Key": "k-1"}).order(t)
	rejected := a.do("POST", "/orders", validOrder, nil).order(t)
	a.env.Reply(contracts.StockReservationFailed{OrderID: rejected.ID, Reason: "out of stock"})

	tests := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		field                    string
	}{
		{"malformed JSON", "POST", "/orders", `{"customer_id":`, nil, 400, ""},
		{"not an object", "POST", "/orders", `[1,2]`, nil, 400, ""},
		{"null", "POST", "/orders", ` null `, nil, 400, ""},
		{"a string", "POST", "/orders", `"order"`, nil, 400, ""},
		{"empty body", "POST", "/orders", ``, nil, 400, ""},
		{"trailing data", "POST", "/orders", validOrder + `{}`, nil, 400, ""},
		{"unknown field", "POST", "/orders", `{"customer_id":"c","items":[],"coupon":"x"}`, nil, 400, "coupon"},
		{"quantity of the wrong type", "POST", "/orders", `{"customer_id":"c","items":[{"sku":"SKU-1","quantity":"2"}]}`, nil, 400, "items[0].quantity"},
		{"quantity of the wrong type in the second item", "POST", "/orders",
			`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1},{"sku":"SKU-2","quantity":"2"}]}`, nil, 400, "items[1].quantity"},
		{"negative quantity", "POST", "/orders", `{"customer_id":"c","items":[{"sku":"SKU-1","quantity":-1}]}`, nil, 422, "items[0].quantity"},
		{"unknown SKU", "POST", "/orders", `{"customer_id":"c","items":[{"sku":"NOPE","quantity":1}]}`, nil, 422, "items[0].sku"},
		{"no items", "POST", "/orders", `{"customer_id":"c","items":[]}`, nil, 422, "items"},
		{"missing customer", "POST", "/orders", `{"items":[{"sku":"SKU-1","quantity":1}]}`, nil, 422, "customer_id"},
		{"oversize body", "POST", "/orders", `{"customer_id":"` + strings.Repeat("x", 2000) + `","items":[]}`, nil, 413, ""},
		{"idempotency key reused with another body", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"SKU-1","quantity":3}]}`,
			map[string]string{"Idempotency-Key": "k-1"}, 422, "Idempotency-Key"},
		{"empty idempotency key", "POST", "/orders", validOrder, map[string]string{"Idempotency-Key": ""}, 422, "Idempotency-Key"},
		{"unknown order", "GET", "/orders/nope", "", nil, 404, ""},
		{"events of an unknown order", "GET", "/orders/nope/events", "", nil, 404, ""},
		{"cancel an unknown order", "POST", "/orders/nope/cancel", "", nil, 404, ""},
		{"cancel a rejected order", "POST", "/orders/" + rejected.ID + "/cancel", "", nil, 409, ""},
		{"cancel with a malformed body", "POST", "/orders/" + first.ID + "/cancel", `{"reason":1}`, nil, 400, "reason"},
		{"cancel with an oversize body", "POST", "/orders/" + first.ID + "/cancel", `{"reason":"` + strings.Repeat("x", 2000) + `"}`, nil, 413, ""},
		{"limit not a number", "GET", "/orders?limit=ten", "", nil, 400, "limit"},
		{"limit zero", "GET", "/orders?limit=0", "", nil, 422, "limit"},
		{"limit too large", "GET", "/orders?limit=501", "", nil, 422, "limit"},
		{"unknown status", "GET", "/orders?status=SHIPPED", "", nil, 422, "status"},
		{"bad cursor", "GET", "/orders?cursor=%25%25", "", nil, 422, "cursor"},
		{"placed_since not a time", "GET", "/orders?placed_since=yesterday", "", nil, 400, "placed_since"},
		{"unknown route", "GET", "/nope", "", nil, 404, ""},
		{"wrong method", "DELETE", "/orders", "", nil, 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(tc.method, tc.path, tc.body, tc.header)
			if r.status != tc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.status)
			}
			p := r.problem(t)
			if p.Field != tc.field {
				t.Errorf("field: got %q, want %q (problem %+v)", p.Field, tc.field, p)
			}
			if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field) {
				t.Errorf("errors: got %+v, want the first naming %q", p.Errors, tc.field)
			}
			if p.Instance != strings.Split(tc.path, "?")[0] {
				t.Errorf("instance: got %q, want %q", p.Instance, tc.path)
			}
			if strings.Contains(p.Detail, "inbox") {
				t.Errorf("detail: got %q, want no word of the storage's plumbing", p.Detail)
			}
		})
	}
	if n := len(a.env.OutboxTypes(first.ID)); n != 2 {
		t.Errorf("outbox of the first order: got %d messages, want 2 (refused requests stored nothing)", n)
	}
}

// Problem details say what the client sent and name the field or query
// parameter as on the wire, without the "invalid order" of a placed
// order's validation.
func TestProblemDetails(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	tests := []struct {
		name, method, path, body string
		status                   int
		field, detail            string
	}{
		{"limit zero", "GET", "/orders?limit=0", "", 422, "limit",
			"query parameter limit must be between 1 and 500, got 0"},
		{"limit negative", "GET", "/orders?limit=-3", "", 422, "limit",
			"query parameter limit must be between 1 and 500, got -3"},
		{"limit too large", "GET", "/orders?limit=501", "", 422, "limit",
			"query parameter limit must be between 1 and 500, got 501"},
		{"bad cursor", "GET", "/orders?cursor=garbage", "", 422, "cursor",
			`query parameter cursor must be the next_cursor of a previous page, got "garbage"`},
		{"unknown status", "GET", "/orders?status=shipped", "", 422, "status",
			`query parameter status must be one of [PENDING STOCK_RESERVED PAYMENT_CHARGED CANCELLING COMPLETED CANCELLED REJECTED], got "SHIPPED"`},
		{"status and limit", "GET", "/orders?status=NOPE&limit=0", "", 422, "status",
			`query parameter status must be one of [PENDING STOCK_RESERVED PAYMENT_CHARGED CANCELLING COMPLETED CANCELLED REJECTED], got "NOPE"; ` +
				"query parameter limit must be between 1 and 500, got 0"},
		{"quantity of the wrong type", "POST", "/orders", `{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1},{"sku":"SKU-2","quantity":"2"}]}`,
			400, "items[1].quantity", "malformed request: items[1].quantity: must be of type integer, got string"},
		{"item not an object", "POST", "/orders", `{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1},7]}`,
			400, "items[1]", "malformed request: items[1]: must be of type object, got number"},
		{"items not an array", "POST", "/orders", `{"customer_id":"c","items":{"sku":"SKU-1"}}`,
			400, "items", "malformed request: items: must be of type array, got object"},
		{"address field of the wrong type", "POST", "/orders", `{"customer_id":"c","items":[],"shipping_address":{"name":["x"]}}`,
			400, "shipping_address.name", "malformed request: shipping_address.name: must be of type string, got array"},
		{"quantity after a nested value", "POST", "/orders", `{"customer_id":"c","shipping_address":{"name":"n"},"items":[{"sku":"a","quantity":1},{"sku":"b","quantity":2},{"quantity":true}]}`,
			400, "items[2].quantity", "malformed request: items[2].quantity: must be of type integer, got boolean"},
		{"unknown field", "POST", "/orders", `{"customer_id":"c","items":[],"coupon":"x"}`,
			400, "coupon", "malformed request: coupon: is not a known field"},
		{"unknown field in the second item", "POST", "/orders", `{"customer_id":"c","items":[{"sku":"a","quantity":1},{"sku":"b","quantity":1,"colour":"red"}]}`,
			400, "items[1].colour", "malformed request: items[1].colour: is not a known field"},
		{"the first fault in the body's order: a name's case before an unknown field", "POST", "/orders", `{"customer_id":"c","items":[{"SKU":"a","quantity":1,"x":1}]}`,
			400, "items[0].SKU", `malformed request: items[0].SKU: is not a known field; did you mean "sku"? (field names are case-sensitive)`},
		{"the first fault in the body's order: a type before an unknown field", "POST", "/orders", `{"customer_id":"c","items":[{"sku":"a","quantity":"1","x":1}]}`,
			400, "items[0].quantity", "malformed request: items[0].quantity: must be of type integer, got string"},
		{"item field at the top", "POST", "/orders", `{"customer_id":"c","items":[{"sku":"a","quantity":1}],"sku":"b"}`,
			400, "sku", "malformed request: sku: is not a known field"},
		{"unknown field in the address", "POST", "/orders", `{"customer_id":"c","shipping_address":{"name":"n","planet":"Mars"},"items":[]}`,
			400, "shipping_address.planet", "malformed request: shipping_address.planet: is not a known field"},
		{"unknown field with an escaped quote", "POST", "/orders", `{"customer_id":"c","items":[],"co\"upon":1}`,
			400, `co"upon`, `malformed request: co"upon: is not a known field`},
		{"placed order validation keeps its prefix", "POST", "/orders", `{"customer_id":"c","items":[{"sku":"SKU-1","quantity":-1}]}`,
			422, "items[0].quantity", "invalid order: items[0].quantity must be positive, got -1; items total must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(tc.method, tc.path, tc.body, nil)
			if r.status != tc.status {
				t.Fatalf("status: got %d %s, want %d", r.status, r.body, tc.status)
			}
			p := r.problem(t)
			if p.Field != tc.field {
				t.Errorf("field: got %q, want %q", p.Field, tc.field)
			}
			if p.Detail != tc.detail {
				t.Errorf("detail:\n got %q\nwant %q", p.Detail, tc.detail)
			}
		})
	}
}

// A client's X-Request-ID becomes the causation id of what the request
// stores only if it is short printable ASCII; otherwise a fresh id is used.
func TestRequestIDIsBoundedBeforeItIsStored(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	tests := []struct {
		name, id string
		kept     bool
	}{
		{"short id", "req-42", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"printable punctuation and space", "a b:c/d=e", true},
		{"too long", strings.Repeat("a", 129), false},
		{"megabyte", strings.Repeat("x", 1<<20), false},
		{"control character", "req\x01x", false},
		{"beyond ASCII", "réq", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/orders", strings.NewReader(validOrder))
			req.Header["X-Request-Id"] = []string{tc.id} // set raw: Header.Set would not refuse it either
			rec := httptest.NewRecorder()
			a.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				t.Fatalf("POST /orders: got %d %s, want 201", rec.Code, rec.Body)
			}
			got := rec.Header().Get("X-Request-Id")
			switch {
			case tc.kept && got != tc.id:
				t.Errorf("X-Request-Id: got %.40q, want the client's %.40q", got, tc.id)
			case !tc.kept && (got == tc.id || len(got) != 32):
				t.Errorf("X-Request-Id: got %.40q, want a fresh 32-character id", got)
			}
			var placed struct{ ID string }
			_ = json.Unmarshal(rec.Body.Bytes(), &placed)
			var evs struct {
				Events []struct {
					Metadata struct {
						CausationID string `json:"causation_id"`
					} `json:"metadata"`
				} `json:"events"`
			}
			r := a.do("GET", "/orders/"+placed.ID+"/events", "", nil)
			if err := json.Unmarshal(r.body, &evs); err != nil || len(evs.Events) == 0 {
				t.Fatalf("GET events: got %d %s, %v", r.status, r.body, err)
			}
			if c := evs.Events[0].Metadata.CausationID; c != got {
				t.Errorf("causation_id: got %.40q, want the request id %.40q", c, got)
			}
		})
	}
}

// A request whose client went away ends with context.Canceled: that is
// 499, logged at debug and not an error span, not a 500.
func TestClientGoneIs499(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	logs := &ordertest.Logs{}
	a := newAPI(t, ports.HTTPConfig{TracerProvider: tp, Logger: slog.New(logs)})

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client is gone before the handler runs
	req := httptest.NewRequest("POST", "/orders", strings.NewReader(validOrder)).WithContext(ctx)
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	if rec.Code != 499 {
		t.Fatalf("status: got %d %s, want 499", rec.Code, rec.Body)
	}
	for _, rec := range logs.Records() {
		if rec.Level >= slog.LevelWarn {
			t.Errorf("log level: got a %v record, want debug only", rec.Level)
		}
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("spans: got %d, want 1", len(spans))
	}
	if got := spans[0].Status.Code; got == codes.Error {
		t.Errorf("span status: got %v, want not an error", got)
	}
}

// GET /readyz answers within ReadyTimeout, even when the check hangs
// without heeding its context (a database on a frozen disk).
func TestReadyz(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tests := []struct {
		name   string
		ready  func(context.Context) error
		status int
		body   string
	}{
		{"ready", func(context.Context) error { return nil }, 200, "ready"},
		{"not ready", func(context.Context) error { return errors.New("router not running") }, 503, "router not running"},
		{"check heeding its context", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, 503, "unavailable"},
		{"check ignoring its context", func(context.Context) error { <-release; return nil }, 503, "did not answer within 50ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAPI(t, ports.HTTPConfig{Ready: tc.ready, ReadyTimeout: 50 * time.Millisecond})
			start := time.Now()
			r := a.do("GET", "/readyz", "", nil)
			// Against a probe held by the check (which never ends here): a
			// busy machine may take a while to answer even so.
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %v, want at most about the 50ms ReadyTimeout", took)
			}
			if r.status != tc.status || !strings.Contains(string(r.body), tc.body) {
				t.Errorf("GET /readyz: got %d %s, want %d saying %q", r.status, r.body, tc.status, tc.body)
			}
		})
	}
}

// Probes share the readiness check in flight: a check stuck on a frozen
// disk is not started again, and left behind, by every probe.
func TestReadyzSharesTheCheckInFlight(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	a := newAPI(t, ports.HTTPConfig{ReadyTimeout: 20 * time.Millisecond, Ready: func(context.Context) error {
		if calls.Add(1) == 1 {
			<-release // the first check hangs until released
		}
		return nil
	}})
	for range 5 {
		if r := a.do("GET", "/readyz", "", nil); r.status != http.StatusServiceUnavailable {
			t.Fatalf("GET /readyz while the check hangs: got %d %s, want 503", r.status, r.body)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("checks started by 5 probes while one hung: got %d, want 1", got)
	}
	close(release)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := a.do("GET", "/readyz", "", nil)
		if r.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz after the check ended: got %d %s, want 200", r.status, r.body)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The POST /orders span is the root of the order's trace, and the
// ReserveStock message carries it as the parent of its publish span.
func TestPlaceOrderSpanIsTheParentOfReserveStock(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	// The services' propagator: W3C Trace Context and Baggage.
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	a := newAPI(t, ports.HTTPConfig{TracerProvider: tp, Propagator: prop})

	r := a.do("POST", "/orders", validOrder, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /orders: got %d %s", r.status, r.body)
	}
	o := r.order(t)
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("spans: got %d, want 1", len(spans))
	}
	s := spans[0]
	if s.Name != "POST /orders" || s.SpanKind != trace.SpanKindServer || s.Parent.IsValid() {
		t.Errorf("span: got %q kind %v parent %v, want a root SERVER span POST /orders", s.Name, s.SpanKind, s.Parent)
	}
	if o.TraceID != s.SpanContext.TraceID().String() {
		t.Errorf("order trace id: got %s, want the span's %s", o.TraceID, s.SpanContext.TraceID())
	}
	if got, want := r.header.Get(ports.HeaderTraceResponse), "00-"+s.SpanContext.TraceID().String()+"-"+s.SpanContext.SpanID().String()+"-01"; got != want {
		t.Errorf("traceresponse header: got %q, want %q (the request's span)", got, want)
	}
	var found bool
	for _, m := range a.env.Outbox() {
		if m.Message.MessageType() != contracts.TypeReserveStock {
			continue
		}
		found = true
		want := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"
		if got := m.Metadata["traceparent"]; got != want {
			t.Errorf("ReserveStock traceparent: got %q, want %q", got, want)
		}
	}
	if !found {
		t.Error("no ReserveStock in the outbox")
	}

	// A client's traceparent is continued; its baggage is not carried
	// into the order's messages.
	parent := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	before := len(a.env.Outbox())
	a.do("POST", "/orders", `{"customer_id":"c-9","items":[{"sku":"SKU-3","quantity":1}]}`,
		map[string]string{"traceparent": parent, "baggage": "tenant=" + strings.Repeat("x", 2000)})
	spans = exp.GetSpans()
	if got := spans[len(spans)-1].Parent.SpanID().String(); got != "b7ad6b7169203331" {
		t.Errorf("continued span parent: got %s, want b7ad6b7169203331", got)
	}
	out := a.env.Outbox()
	if len(out) == before {
		t.Fatal("no message in the outbox for the order with a traceparent")
	}
	for _, m := range out[before:] {
		if got := m.Metadata["baggage"]; got != "" {
			t.Errorf("%s: got baggage metadata of %d bytes, want none (the client's baggage dropped)", m.Message.MessageType(), len(got))
		}
	}
}

// Two Idempotency-Key headers are refused, and nothing is placed.
func TestTwoIdempotencyKeysAreRefused(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	req := httptest.NewRequest("POST", "/orders", strings.NewReader(validOrder))
	req.Header.Add("Idempotency-Key", "k-1")
	req.Header.Add("Idempotency-Key", "k-2")
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"field":"Idempotency-Key"`) {
		t.Errorf("got %d %s, want 422 naming Idempotency-Key", rec.Code, rec.Body)
	}
	if got := len(a.env.Outbox()); got != 0 {
		t.Errorf("outbox: got %d messages, want none", got)
	}
}

// A HEAD request, served as GET, is recorded as the HEAD it was.
func TestHeadRequestSpanNamesHead(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	a := newAPI(t, ports.HTTPConfig{TracerProvider: tp, Propagator: propagation.TraceContext{}})
	srv := ports.NewHTTPServer("127.0.0.1:0", nil, a.h)
	rec := httptest.NewRecorder()
	srv.Handler.ServeHTTP(rec, httptest.NewRequest("HEAD", "http://127.0.0.1:8080/orders/nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("HEAD /orders/nope: got %d, want 404", rec.Code)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("spans: got %d, want 1", len(spans))
	}
	var method string
	for _, kv := range spans[0].Attributes {
		if kv.Key == "http.request.method" {
			method = kv.Value.AsString()
		}
	}
	if spans[0].Name != "HEAD /orders/:id" || method != "HEAD" {
		t.Errorf("span: got %q with http.request.method %q, want \"HEAD /orders/:id\" and HEAD", spans[0].Name, method)
	}
}

// The server the order service runs refuses an order a page on another
// site makes a browser send (a text/plain POST needs no CORS preflight),
// and takes the same request from a client that sends no Origin (curl).
func TestTheServerRefusesOrdersFromOtherOrigins(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	srv := ports.NewHTTPServer("127.0.0.1:0", nil, a.h)
	post := func(header map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "http://127.0.0.1:8080/orders", strings.NewReader(validOrder))
		req.Header.Set("Content-Type", "text/plain")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		srv.Handler.ServeHTTP(rec, req)
		return rec
	}
	rec := post(map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
	if rec.Code != http.StatusForbidden || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("cross-origin POST /orders: got %d %q, want 403 application/problem+json", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := post(nil); rec.Code != http.StatusCreated {
		t.Errorf("POST /orders without an Origin: got %d %s, want 201", rec.Code, rec.Body)
	}
}

// Listening on every interface (in Docker Compose), the server answers to
// the names it is given and refuses others: a page whose name was rebound
// to the published 127.0.0.1 port cannot place orders as its own origin.
func TestTheServerRefusesReboundNames(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	srv := ports.NewHTTPServer("0.0.0.0:8080", []string{"order"}, a.h)
	for host, want := range map[string]int{"attacker.example:8080": http.StatusMisdirectedRequest, "order:8080": http.StatusCreated, "127.0.0.1:8080": http.StatusCreated} {
		req := httptest.NewRequest("POST", "http://"+host+"/orders", strings.NewReader(validOrder))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Origin", "http://"+host)
		rec := httptest.NewRecorder()
		srv.Handler.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("POST /orders with Host %s: got %d %s, want %d", host, rec.Code, rec.Body, want)
		}
	}
}

// Once PlaceOrder has committed, POST /orders answers 201 with the order
// even if the order cannot be read back (here the read pool is closed, as
// when no file descriptor is left): an error would make a client without
// an Idempotency-Key place the order again.
func TestPlaceOrderAnswers201WhenTheReadBackFails(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	if err := a.env.DB.Reader.Close(); err != nil {
		t.Fatal(err)
	}
	r := a.do("POST", "/orders", validOrder, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /orders: got %d %s, want 201", r.status, r.body)
	}
	v := r.order(t)
	if v.ID == "" || v.Status != "PENDING" || v.TotalCents == 0 || len(v.Items) != 1 {
		t.Errorf("body: got %+v, want the pending order with its item and total", v)
	}
	if got, want := r.header.Get("Location"), "/orders/"+v.ID; got != want {
		t.Errorf("Location: got %q, want %q", got, want)
	}
	var n int // through the writer: the readers are closed
	if err := a.env.DB.Writer.QueryRow(`SELECT count(*) FROM events WHERE stream_id = ?`, v.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("events of %s: got %d, want 1", v.ID, n)
	}
}

// A replay whose read of the order fails answers the failure, without a
// Location: nothing was created by this request, and the order it names
// could not be shown.
func TestReplayWhoseReadFailsHasNoLocation(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	key := map[string]string{"Idempotency-Key": "k-1"}
	if r := a.do("POST", "/orders", validOrder, key); r.status != http.StatusCreated {
		t.Fatalf("POST /orders: got %d %s, want 201", r.status, r.body)
	}
	if err := a.env.DB.Reader.Close(); err != nil {
		t.Fatal(err)
	}
	r := a.do("POST", "/orders", validOrder, key)
	if r.status < 500 {
		t.Fatalf("replay with the readers closed: got %d %s, want a 5xx", r.status, r.body)
	}
	if got := r.header.Get("Location"); got != "" {
		t.Errorf("Location: got %q, want none", got)
	}
}

// A database that cannot take a write (here: SQLite's "database or disk
// is full", from a page limit on the writer) is a 503 of type
// storage-unavailable with Retry-After, whose detail names no file; it
// was a bare 500.
func TestStorageFailuresAre503(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	a := newAPI(t, ports.HTTPConfig{TracerProvider: tp})
	var pages int
	if err := a.env.DB.Writer.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := a.env.DB.Writer.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	var r response
	for range 200 { // until the file has no free page left
		if r = a.do("POST", "/orders", validOrder, nil); r.status != http.StatusCreated {
			break
		}
	}
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("POST /orders on a full database: got %d %s, want 503", r.status, r.body)
	}
	p := r.problem(t)
	if got, want := p.Type, "urn:orderflow:problem:storage-unavailable"; got != want {
		t.Errorf("type: got %q, want %q", got, want)
	}
	if got, want := r.header.Get("Retry-After"), "5"; got != want {
		t.Errorf("Retry-After: got %q, want %q", got, want)
	}
	if strings.Contains(p.Detail, a.env.Path) || strings.Contains(p.Detail, "order.db") {
		t.Errorf("detail: got %q, want no file name", p.Detail)
	}
	// The server span is an error whose type is the status code, as the
	// HTTP conventions ask.
	spans := exp.GetSpans()
	if len(spans) == 0 {
		t.Fatal("no span recorded")
	}
	last := spans[len(spans)-1]
	var errType string
	for _, kv := range last.Attributes {
		if kv.Key == "error.type" {
			errType = kv.Value.AsString()
		}
	}
	if last.Status.Code != codes.Error || errType != "503" {
		t.Errorf("span of the 503: got status %v, error.type %q; want an error of type 503", last.Status.Code, errType)
	}
}

// slowCommits is a Transactor whose InTx, once armed, answers only after
// its transaction committed and the caller's deadline passed: a request
// whose deadline passed while it waited in the shared transaction (a slow
// fsync, a long batch). A context without a deadline is not held.
type slowCommits struct {
	app.Transactor
	armed *atomic.Bool
}

func (s slowCommits) InTx(ctx context.Context, fn app.TxFunc) error {
	if err := s.Transactor.InTx(ctx, fn); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); ok && s.armed.Load() {
		<-ctx.Done()
	}
	return nil
}

// Once CancelOrder has committed, POST /orders/{id}/cancel answers 200
// with the order as committed even if the request's deadline passed while
// it waited for the commit: a read after the commit would fail and answer
// 503 for an order that is cancelling.
func TestCancelOrderAnswers200WhenTheDeadlinePassesDuringTheCommit(t *testing.T) {
	var armed atomic.Bool
	// The commit outlasts the deadline by waiting for it, so the deadline
	// need only be long enough for the request to reach the commit on a
	// busy machine: the test takes that long.
	a := newAPIWith(t, ports.HTTPConfig{RequestTimeout: 5 * time.Second}, ordertest.Options{
		WrapTransactor: func(tx app.Transactor) app.Transactor {
			return slowCommits{Transactor: tx, armed: &armed}
		},
	})
	id := a.env.Place()
	armed.Store(true)
	r := a.do("POST", "/orders/"+id+"/cancel", `{"reason":"changed my mind"}`, nil)
	armed.Store(false)
	if r.status != http.StatusOK {
		t.Fatalf("POST /orders/%s/cancel: got %d %s, want 200", id, r.status, r.body)
	}
	got := r.order(t)
	if got.ID != id || got.Status != "CANCELLING" || got.Reason != "changed my mind" {
		t.Errorf("body: got %s %s %q, want %s CANCELLING with the reason", got.ID, got.Status, got.Reason, id)
	}
	if want := a.env.Order(id); !reflect.DeepEqual(got, want) {
		t.Errorf("body:\ngot  %+v\nwant %+v (GET /orders/%s)", got, want, id)
	}
}

// withdrawnCommits is a Transactor whose InTx, once armed, fails as the
// inbox's does when the request's deadline passes before a shared
// transaction took it.
type withdrawnCommits struct {
	app.Transactor
	armed *atomic.Bool
}

func (w withdrawnCommits) InTx(ctx context.Context, fn app.TxFunc) error {
	if w.armed.Load() {
		return fmt.Errorf("inbox: %w", context.DeadlineExceeded)
	}
	return w.Transactor.InTx(ctx, fn)
}

// A cancellation refused for now (503) is told to send the cancellation
// again, not a POST /orders with an Idempotency-Key it never sent.
func TestCancelOrder503SaysToSendTheCancellationAgain(t *testing.T) {
	var armed atomic.Bool
	a := newAPIWith(t, ports.HTTPConfig{}, ordertest.Options{
		WrapTransactor: func(tx app.Transactor) app.Transactor { return withdrawnCommits{Transactor: tx, armed: &armed} },
	})
	id := a.env.Place()
	armed.Store(true)
	r := a.do("POST", "/orders/"+id+"/cancel", "", nil)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("POST /orders/%s/cancel: got %d %s, want 503", id, r.status, r.body)
	}
	if p := r.problem(t); !strings.Contains(p.Detail, "cancelling changes nothing") || strings.Contains(p.Detail, "POST /orders") {
		t.Errorf("detail: got %q, want one saying to send the cancellation again, not a POST /orders", p.Detail)
	}
}

// countedTx is a Transactor that counts the transactions InTx runs.
type countedTx struct {
	app.Transactor
	n *atomic.Int32
}

func (c countedTx) InTx(ctx context.Context, fn app.TxFunc) error {
	c.n.Add(1)
	return c.Transactor.InTx(ctx, fn)
}

// An invalid order is refused with 422 at once, without a transaction:
// while another connection holds the database's write lock, and
// whatever its Idempotency-Key, a key that placed an order included.
// It took the write lock and, held, answered 503 "send it again later"
// after the 10 s busy timeout.
func TestInvalidOrdersAreRefusedWithoutTheDatabase(t *testing.T) {
	var txs atomic.Int32
	a := newAPIWith(t, ports.HTTPConfig{}, ordertest.Options{
		WrapTransactor: func(tx app.Transactor) app.Transactor { return countedTx{Transactor: tx, n: &txs} },
	})
	if r := a.do("POST", "/orders", validOrder, map[string]string{"Idempotency-Key": "k-used"}); r.status != http.StatusCreated {
		t.Fatalf("POST /orders: got %d %s, want 201", r.status, r.body)
	}

	locker, err := sql.Open("sqlite3", "file:"+a.env.Path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locker.Close() })
	conn, err := locker.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		_ = conn.Close()
	})

	before := txs.Load()
	tests := []struct {
		name, body, key, field string
	}{
		{"no items", `{"customer_id":"c","items":[]}`, "", "items"},
		{"unknown SKU", `{"customer_id":"c","items":[{"sku":"NOPE","quantity":1}]}`, "", "items[0].sku"},
		{"blank customer", `{"customer_id":" ","items":[{"sku":"SKU-1","quantity":1}]}`, "", "customer_id"},
		{"no items, a new key", `{"customer_id":"c","items":[]}`, "k-new", "items"},
		{"no items, the key of a placed order", `{"customer_id":"c","items":[]}`, "k-used", "items"},
		{"unknown SKU, the key of a placed order", `{"customer_id":"c","items":[{"sku":"NOPE","quantity":1}]}`, "k-used", "items[0].sku"},
	}
	for _, tc := range tests {
		ok := t.Run(tc.name, func(t *testing.T) {
			header := map[string]string{}
			if tc.key != "" {
				header["Idempotency-Key"] = tc.key
			}
			start := time.Now()
			r := a.do("POST", "/orders", tc.body, header)
			took := time.Since(start)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("got %d %s after %v, want 422", r.status, r.body, took)
			}
			if p := r.problem(t); p.Type != "urn:orderflow:problem:validation-error" || p.Field != tc.field {
				t.Errorf("problem: got type %s field %q, want validation-error naming %q", p.Type, p.Field, tc.field)
			}
			// Well under the 10 s busy timeout a transaction would wait out.
			if took > 5*time.Second {
				t.Errorf("took %v, want an answer at once (the write lock is held)", took)
			}
		})
		if !ok {
			break // each waits out the busy timeout
		}
	}
	if got := txs.Load() - before; got != 0 {
		t.Errorf("transactions run for invalid orders: got %d, want 0", got)
	}

	// The lock was held all along: another writer cannot take it.
	probe, err := sql.Open("sqlite3", "file:"+a.env.Path+"?_busy_timeout=0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if _, err := probe.Exec("BEGIN IMMEDIATE"); err == nil {
		t.Error("the write lock was free: the test proves nothing")
	}
}

// The server's own refusals, a cross-origin write (403) and a Host it
// does not answer to (421), are answers of the API like any other: over
// real HTTP, problem+json with the X-Request-Id every response carries
// (the client's when valid) and the path as instance. They had neither.
func TestRefusalsAreProblemsWithTheRequestID(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	ts := httptest.NewServer(ports.NewHTTPServer("127.0.0.1:0", []string{"order"}, a.h).Handler)
	t.Cleanup(ts.Close)
	tests := []struct {
		name, method, path string
		host               string
		header             map[string]string
		status             int
		typ                string
	}{
		{"cross-origin POST", "POST", "/orders", "", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
			http.StatusForbidden, "urn:orderflow:problem:cross-origin-request"},
		{"cross-origin cancel, the client's request id", "POST", "/orders/o-1/cancel", "", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "X-Request-Id": "req-7"},
			http.StatusForbidden, "urn:orderflow:problem:cross-origin-request"},
		{"rebound name, POST", "POST", "/orders", "evil.example", nil, http.StatusMisdirectedRequest, "urn:orderflow:problem:misdirected-request"},
		{"rebound name, GET", "GET", "/orders?limit=1", "evil.example:8080", map[string]string{"X-Request-Id": "req-8"},
			http.StatusMisdirectedRequest, "urn:orderflow:problem:misdirected-request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(validOrder))
			if err != nil {
				t.Fatal(err)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			r := response{status: resp.StatusCode, header: resp.Header, body: body}
			if r.status != tc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.status)
			}
			p := r.problem(t)
			if p.Type != tc.typ {
				t.Errorf("type: got %q, want %q", p.Type, tc.typ)
			}
			if want := strings.Split(tc.path, "?")[0]; p.Instance != want {
				t.Errorf("instance: got %q, want %q", p.Instance, want)
			}
			id := r.header.Get("X-Request-Id")
			if want := tc.header["X-Request-Id"]; want != "" && id != want {
				t.Errorf("X-Request-Id: got %q, want the client's %q", id, want)
			}
			if len(id) == 0 {
				t.Error("X-Request-Id: got none, want one as on every response")
			}
		})
	}
	if got := len(a.env.Outbox()); got != 0 {
		t.Errorf("outbox: got %d messages, want none (every request was refused)", got)
	}
}

// A body the API cannot read as it is sent, compressed (Content-Encoding)
// or in a charset other than UTF-8, is refused with 415 saying so; it got
// 400 "not a JSON object" or "not valid UTF-8". Any Content-Type without
// a charset is still read as JSON (curl -d sends a form's).
func TestBodiesInAnotherEncodingAre415(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	id := a.env.Place()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write([]byte(validOrder)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	latin1 := "{\"customer_id\":\"Zo\xeb\",\"items\":[{\"sku\":\"SKU-1\",\"quantity\":1}]}"
	tests := []struct {
		name, path, body string
		header           map[string]string
		status           int
	}{
		{"gzip", "/orders", gz.String(), map[string]string{"Content-Encoding": "gzip"}, 415},
		{"gzip, a cancellation", "/orders/" + id + "/cancel", gz.String(), map[string]string{"Content-Encoding": "gzip"}, 415},
		{"br, then identity", "/orders", validOrder, map[string]string{"Content-Encoding": "br, identity"}, 415},
		{"Latin-1", "/orders", latin1, map[string]string{"Content-Type": "application/json; charset=iso-8859-1"}, 415},
		{"Latin-1 as text", "/orders", latin1, map[string]string{"Content-Type": "text/plain;charset=ISO-8859-1"}, 415},
		{"UTF-16", "/orders/" + id + "/cancel", `{}`, map[string]string{"Content-Type": "application/json; charset=utf-16"}, 415},
		{"identity", "/orders", validOrder, map[string]string{"Content-Encoding": "identity"}, 201},
		{"UTF-8", "/orders", validOrder, map[string]string{"Content-Type": "application/json; charset=UTF-8"}, 201},
		{"a form, as curl -d sends", "/orders", validOrder, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 201},
		{"no Content-Type", "/orders", validOrder, nil, 201},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do("POST", tc.path, tc.body, tc.header)
			if r.status != tc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.status != http.StatusUnsupportedMediaType {
				return
			}
			if p := r.problem(t); p.Type != "urn:orderflow:problem:unsupported-media-type" {
				t.Errorf("type: got %q, want unsupported-media-type", p.Type)
			}
			if _, ok := tc.header["Content-Encoding"]; ok && r.header.Get("Accept-Encoding") != "identity" {
				t.Errorf("Accept-Encoding: got %q, want identity (RFC 9110 §15.5.16)", r.header.Get("Accept-Encoding"))
			}
		})
	}
}

// Allow lists HEAD wherever GET is allowed, since the server answers it
// (headmethod): on a 405 and on the answer to OPTIONS. It left HEAD out.
func TestAllowListsHead(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	ts := httptest.NewServer(ports.NewHTTPServer("127.0.0.1:0", nil, a.h).Handler)
	t.Cleanup(ts.Close)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"OPTIONS", "/orders", 204, "OPTIONS, GET, HEAD, POST"},
		{"DELETE", "/orders", 405, "OPTIONS, GET, HEAD, POST"},
		{"PUT", "/orders/o-1", 405, "OPTIONS, GET, HEAD"},
		{"OPTIONS", "/healthz", 204, "OPTIONS, GET, HEAD"},
		{"OPTIONS", "/orders/o-1/cancel", 204, "OPTIONS, POST"},
		{"GET", "/orders/o-1/cancel", 405, "OPTIONS, POST"},
		{"HEAD", "/orders", 200, ""},
		{"HEAD", "/healthz", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, ts.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow: got %q, want %q", got, tc.allow)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("X-Request-Id: got none")
			}
		})
	}
}

// Problem details say what the client did, in the API's words, without
// the layers' context the log keeps ("get order X: ", "place order: ",
// "invalid order: " on a header or a cancellation), and tell a client to
// send "the same Idempotency-Key" only when it sent one.
func TestProblemDetailsAreTheClients(t *testing.T) {
	a := newAPIWith(t, ports.HTTPConfig{}, ordertest.Options{MaxOpenOrders: 2})
	placed := a.do("POST", "/orders", validOrder, map[string]string{"Idempotency-Key": "k-1"}).order(t)
	rejected := a.env.Place()
	a.env.Reply(contracts.StockReservationFailed{OrderID: rejected, Reason: "out of stock"})
	a.env.Place() // the second open order
	twoKeys := func() map[string][]string { return map[string][]string{"Idempotency-Key": {"k-1", "k-2"}} }
	tests := []struct {
		name, method, path, body string
		header                   map[string][]string
		status                   int
		detail                   string
	}{
		{"unknown order", "GET", "/orders/nope", "", nil, 404, "order not found: nope"},
		{"events of an unknown order", "GET", "/orders/nope/events", "", nil, 404, "order not found: nope"},
		{"cancel an unknown order", "POST", "/orders/nope/cancel", "", nil, 404, "order not found: nope"},
		{"cancel a rejected order", "POST", "/orders/" + rejected + "/cancel", "", nil, 409,
			"order cannot be cancelled: order " + rejected + " is REJECTED"},
		{"cancel with a control character", "POST", "/orders/" + placed.ID + "/cancel", `{"reason":"a\u0007"}`, nil, 422,
			"invalid cancellation: reason must not contain control or bidirectional formatting characters"},
		{"key reused", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"SKU-1","quantity":3}]}`, map[string][]string{"Idempotency-Key": {"k-1"}}, 422,
			`idempotency key reused with a different request: key "k-1" placed order ` + placed.ID},
		{"two keys", "POST", "/orders", validOrder, twoKeys(), 422,
			"request header Idempotency-Key was sent more than once; send one key"},
		{"empty key", "POST", "/orders", validOrder, map[string][]string{"Idempotency-Key": {""}}, 422,
			"request header Idempotency-Key is empty; send a key of 1 to 255 printable ASCII characters, or no header"},
		{"too many open orders, no key", "POST", "/orders", validOrder, nil, 503,
			"too many open orders: 2 orders are open, the limit is 2; send the request again later"},
		{"too many open orders, a key", "POST", "/orders", validOrder, map[string][]string{"Idempotency-Key": {"k-3"}}, 503,
			"too many open orders: 2 orders are open, the limit is 2; send the request again later (a POST /orders with the same Idempotency-Key)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.path, body)
			maps.Copy(req.Header, tc.header)
			rec := httptest.NewRecorder()
			a.h.ServeHTTP(rec, req)
			r := response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
			if r.status != tc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.status)
			}
			if p := r.problem(t); p.Detail != tc.detail {
				t.Errorf("detail:\n got %q\nwant %q", p.Detail, tc.detail)
			}
		})
	}
}
