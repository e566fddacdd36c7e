package ports_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/ordertest"
	"github.com/orderflow/orderflow/services/order/internal/ports"
)

// FuzzPlaceOrderRequest sends arbitrary bodies and Idempotency-Keys to
// POST /orders, through the real handler on a real database, and checks
// that the API never fails on bad input: every answer is 201 or 200 with
// an order, or a 4xx application/problem+json document that agrees with
// its status. The seed corpus (run by every `go test`) holds a valid order
// and the malformed shapes of TestProblems, plus odd JSON; run
// `go test -fuzz FuzzPlaceOrderRequest ./internal/ports` to explore.
// TestProblems pins the exact status and field of each known bad input.
func FuzzPlaceOrderRequest(f *testing.F) {
	seeds := []struct{ body, key string }{
		{validOrder, ""},
		{validOrder, "k-1"},
		{`{"customer_id":"c-2","items":[{"sku":"SKU-2","quantity":1}],"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"Berlin","country":"DE"}}`, "k-2"},
		{`{"customer_id":"c-1","items":[{"sku":"SKU-1","quantity":3}]}`, "k-1"}, // the key again, another body
		{`{"customer_id":`, ""},
		{`[1,2]`, ""},
		{``, ""},
		{validOrder + `{}`, ""},
		{`{"customer_id":"c","items":[],"coupon":"x"}`, ""},
		{`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":"2"}]}`, ""},
		{`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":-1}]}`, ""},
		{`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1e400}]}`, ""},
		{`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":9223372036854775807}]}`, ""},
		{`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1.0}]}`, ""},
		{`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":25e-1}]}`, ""},
		{`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":null}],"shipping_address":{"name":"n","line1":"l","city":"c","country":"FR","line2":null}}`, ""},
		{`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1},{"sku":"SKU-1","quantity":1}]}`, ""},
		{`{"customer_id":"c","items":[{"sku":"NOPE","quantity":1}]}`, ""},
		{`{"customer_id":"c","items":null,"shipping_address":null}`, ""},
		{`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1}],"shipping_address":{"country":"` + strings.Repeat("Z", 300) + `"}}`, ""},
		{`{"items":[{"sku":"SKU-1","quantity":1}]}`, ""},
		{`{"customer_id":"\u0000\ud800","items":[{"sku":"SKU-1","quantity":1}]}`, "\x00"},
		{"{\"customer_id\":\"\xff\",\"items\":[{\"sku\":\"SKU-1\",\"quantity\":1}]}", ""},
		{`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1}]}`, strings.Repeat("k", 300)},
		{`{"CUSTOMER_ID":"c","Items":[{"SKU":"SKU-1","Quantity":1}]}`, ""},
		{`{"customer_id":"c","items":{"sku":"SKU-1"}}`, ""},
		{`"just a string"`, ""},
		{`null`, ""},
		{`{"customer_id":"` + strings.Repeat("x", 70<<10) + `","items":[]}`, ""},
	}
	for _, s := range seeds {
		f.Add([]byte(s.body), s.key)
	}

	env := ordertest.New(f, ordertest.Options{})
	h, err := ports.NewHTTPHandler(ports.HTTPConfig{App: env.App})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, body []byte, key string) {
		req := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set(ports.HeaderIdempotencyKey, key)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		switch code := rec.Code; {
		case code == http.StatusCreated || code == http.StatusOK:
			var v app.OrderView
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.ID == "" || len(v.Items) == 0 || v.TotalCents <= 0 {
				t.Fatalf("%d for %q: body %s (%v), want an order with items and a total", code, body, rec.Body, err)
			}
			if !json.Valid(body) {
				t.Fatalf("%d for a body that is not JSON: %q", code, body)
			}
			if code == http.StatusOK && key == "" {
				t.Fatalf("200 (replayed) without an Idempotency-Key for %q", body)
			}
		case code >= 400 && code < 500:
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("%d for %q: content type %q, want application/problem+json", code, body, ct)
			}
			var p ports.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("%d for %q: problem %s: %v", code, body, rec.Body, err)
			}
			if p.Status != code || p.Type == "" || p.Title == "" || p.Instance != "/orders" {
				t.Fatalf("%d for %q: problem %+v, want its status, a type, a title and instance /orders", code, body, p)
			}
			if p.Field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != p.Field) {
				t.Fatalf("%d for %q: field %q but errors %+v", code, body, p.Field, p.Errors)
			}
			if !utf8.Valid(rec.Body.Bytes()) {
				t.Fatalf("%d for %q: problem is not UTF-8", code, body)
			}
			switch code {
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusConflict:
			default:
				t.Fatalf("%d for %q: want 400, 409, 413 or 422 for a bad request: %s", code, body, rec.Body)
			}
		default:
			t.Fatalf("%d for %q (key %q): %s; want 201, 200 or 4xx", code, body, key, rec.Body)
		}
	})
}
