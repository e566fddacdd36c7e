package ports_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/services/order/internal/ports"
)

// A query parameter a route does not take, one given twice and one given
// empty are refused with a 400 naming it: a misspelt filter must not
// answer with every order.
func TestQueryParametersAreChecked(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	o := a.do("POST", "/orders", validOrder, nil).order(t)
	const listKnown = "(known: status, limit, cursor, placed_since)"
	tests := []struct {
		name, path    string
		status        int
		field, detail string
	}{
		{"misspelt filter", "/orders?stauts=CANCELLED&limit=500", 400, "stauts",
			`malformed request: stauts: unknown query parameter "stauts" ` + listKnown},
		{"filter of another API", "/orders?order_id=" + o.ID, 400, "order_id",
			`malformed request: order_id: unknown query parameter "order_id" ` + listKnown},
		{"status twice", "/orders?status=PENDING&status=CANCELLED", 400, "status",
			"malformed request: status: query parameter status is given 2 times; give it once"},
		{"limit twice, the same", "/orders?limit=5&limit=5", 400, "limit",
			"malformed request: limit: query parameter limit is given 2 times; give it once"},
		{"empty status", "/orders?status=", 400, "status",
			"malformed request: status: query parameter status is empty; leave it out, or give it a value"},
		{"empty limit", "/orders?limit=", 400, "limit",
			"malformed request: limit: query parameter limit is empty; leave it out, or give it a value"},
		{"empty cursor", "/orders?cursor=", 400, "cursor",
			"malformed request: cursor: query parameter cursor is empty; leave it out, or give it a value"},
		{"a bare name", "/orders?status", 400, "status",
			"malformed request: status: query parameter status is empty; leave it out, or give it a value"},
		{"a filter that does not decode", "/orders?stauts=%zz", 400, "query",
			`malformed request: query: the query string does not decode: invalid URL escape "%zz"`},
		{"several at fault: the first by name", "/orders?zz=1&aa=2", 400, "aa",
			`malformed request: aa: unknown query parameter "aa" ` + listKnown},
		{"counts take none", "/orders/counts?x=1", 400, "x",
			`malformed request: x: unknown query parameter "x" (this route takes none)`},
		{"one order takes none", "/orders/" + o.ID + "?status=PENDING", 400, "status",
			`malformed request: status: unknown query parameter "status" (this route takes none)`},
		{"events take none", "/orders/" + o.ID + "/events?limit=1", 400, "limit",
			`malformed request: limit: unknown query parameter "limit" (this route takes none)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do("GET", tc.path, "", nil)
			if r.status != tc.status {
				t.Fatalf("status: got %d %s, want %d", r.status, r.body, tc.status)
			}
			p := r.problem(t)
			if p.Type != "urn:orderflow:problem:malformed-request" {
				t.Errorf("type: got %q, want urn:orderflow:problem:malformed-request", p.Type)
			}
			if p.Field != tc.field || len(p.Errors) != 1 || p.Errors[0].Field != tc.field {
				t.Errorf("field: got %q, errors %+v, want %q", p.Field, p.Errors, tc.field)
			}
			if p.Detail != tc.detail {
				t.Errorf("detail:\n got %q\nwant %q", p.Detail, tc.detail)
			}
		})
	}

	// The parameters a route takes still work, all at once.
	for _, path := range []string{
		"/orders?status=pending&limit=5&placed_since=2000-01-01T00:00:00Z",
		"/orders",
		"/orders/counts",
		"/orders/" + o.ID,
		"/orders/" + o.ID + "/events",
		"/healthz?probe=1", // the probes and the document take any
		"/openapi.json?v=2",
	} {
		if r := a.do("GET", path, "", nil); r.status != 200 {
			t.Errorf("GET %s: got %d %s, want 200", path, r.status, r.body)
		}
	}
}

// The bodies encoding/json (v1) takes without a word are refused: invalid
// UTF-8 (it would store U+FFFD), a field given twice (it keeps the last)
// and a field name spelt in another case (it matches names
// case-insensitively). The message says what is wrong, nothing is stored.
func TestStrictJSONBodies(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	o := a.do("POST", "/orders", validOrder, nil).order(t)
	const items = `"items":[{"sku":"SKU-1","quantity":2}]`
	tests := []struct {
		name, path, body string
		field, detail    string
	}{
		{"invalid UTF-8 in a value", "/orders", "{\"customer_id\":\"c\xff\"," + items + "}", "",
			"malformed request: request body is not valid UTF-8: byte 0xff at offset 17"},
		{"invalid UTF-8 in a key", "/orders", "{\"customer_id\":\"c\"," + items + ",\"x\xc3\":1}", "",
			"malformed request: request body is not valid UTF-8: byte 0xc3 at offset 60"},
		{"a surrogate half spelt in UTF-8", "/orders", "{\"customer_id\":\"\xed\xa0\x80\"," + items + "}", "",
			"malformed request: request body is not valid UTF-8: byte 0xed at offset 16"},
		{"a lone high surrogate escaped", "/orders", `{"customer_id":"c\ud800",` + items + `}`, "",
			`malformed request: request body escapes half a UTF-16 surrogate pair without the other half (\ud800 at offset 17); it would be stored as U+FFFD`},
		{"a lone low surrogate escaped", "/orders", `{"customer_id":"c\uDC00x",` + items + `}`, "",
			`malformed request: request body escapes half a UTF-16 surrogate pair without the other half (\uDC00 at offset 17); it would be stored as U+FFFD`},
		{"a high surrogate before a non-surrogate", "/orders", `{"customer_id":"\ud83d\u0041",` + items + `}`, "",
			`malformed request: request body escapes half a UTF-16 surrogate pair without the other half (\ud83d at offset 16); it would be stored as U+FFFD`},
		{"duplicate key", "/orders", `{"customer_id":"c-1","customer_id":"c-2",` + items + `}`, "customer_id",
			"malformed request: customer_id: is given more than once; give each field once"},
		{"duplicate key spelt with an escape", "/orders", `{"customer_id":"c-1","customer_\u0069d":"c-2",` + items + `}`, "customer_id",
			"malformed request: customer_id: is given more than once; give each field once"},
		{"duplicate key in an item", "/orders", `{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1},{"sku":"SKU-1","quantity":1,"quantity":9}]}`, "items[1].quantity",
			"malformed request: items[1].quantity: is given more than once; give each field once"},
		{"duplicate key in the address", "/orders", `{"customer_id":"c",` + items + `,"shipping_address":{"city":"A","city":"B"}}`, "shipping_address.city",
			"malformed request: shipping_address.city: is given more than once; give each field once"},
		{"field name in another case", "/orders", `{"Customer_ID":"c-1",` + items + `}`, "Customer_ID",
			`malformed request: Customer_ID: is not a known field; did you mean "customer_id"? (field names are case-sensitive)`},
		{"field name in another case in an item", "/orders", `{"customer_id":"c","items":[{"SKU":"SKU-1","quantity":1}]}`, "items[0].SKU",
			`malformed request: items[0].SKU: is not a known field; did you mean "sku"? (field names are case-sensitive)`},
		{"field name folded by Unicode (long s)", "/orders", `{"customer_id":"c","items":[{"ſku":"SKU-1","quantity":1}]}`, "items[0].ſku",
			`malformed request: items[0].ſku: is not a known field; did you mean "sku"? (field names are case-sensitive)`},
		{"two spellings of one field", "/orders", `{"customer_id":"c-1","CUSTOMER_ID":"c-2",` + items + `}`, "CUSTOMER_ID",
			`malformed request: CUSTOMER_ID: is not a known field; did you mean "customer_id"? (field names are case-sensitive)`},
		{"cancel: invalid UTF-8", "/orders/" + o.ID + "/cancel", "{\"reason\":\"\xff\"}", "",
			"malformed request: request body is not valid UTF-8: byte 0xff at offset 11"},
		{"cancel: duplicate key", "/orders/" + o.ID + "/cancel", `{"reason":"a","reason":"b"}`, "reason",
			"malformed request: reason: is given more than once; give each field once"},
		{"cancel: field name in another case", "/orders/" + o.ID + "/cancel", `{"Reason":"a"}`, "Reason",
			`malformed request: Reason: is not a known field; did you mean "reason"? (field names are case-sensitive)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do("POST", tc.path, tc.body, nil)
			if r.status != 400 {
				t.Fatalf("status: got %d %s, want 400", r.status, r.body)
			}
			p := r.problem(t)
			if p.Type != "urn:orderflow:problem:malformed-request" {
				t.Errorf("type: got %q, want urn:orderflow:problem:malformed-request", p.Type)
			}
			if p.Field != tc.field {
				t.Errorf("field: got %q, want %q", p.Field, tc.field)
			}
			if p.Detail != tc.detail {
				t.Errorf("detail:\n got %q\nwant %q", p.Detail, tc.detail)
			}
		})
	}
	if got := a.do("GET", "/orders/"+o.ID, "", nil).order(t); got.Status != "PENDING" || got.CustomerID != "c-1" {
		t.Errorf("order after the refused requests: got %s of %q, want PENDING of c-1 (nothing changed)", got.Status, got.CustomerID)
	}
	var page struct {
		Orders []json.RawMessage `json:"orders"`
	}
	if r := a.do("GET", "/orders", "", nil); json.Unmarshal(r.body, &page) != nil || len(page.Orders) != 1 {
		t.Errorf("orders after the refused requests: got %s, want only the first", r.body)
	}

	// What strictness leaves alone still passes: members in any order, a
	// name spelt with an escape, non-ASCII text, the same key in two
	// objects.
	for _, body := range []string{
		`{"items":[{"quantity":1,"sku":"SKU-1"}],"customer_id":"c-é"}`,
		`{"customer_\u0069d":"c",` + items + `}`,
		`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1},{"sku":"SKU-2","quantity":1}],"shipping_address":{"name":"Zoë","line1":"Straße 1","city":"Köln","country":"DE"}}`,
	} {
		if r := a.do("POST", "/orders", body, nil); r.status != 201 {
			t.Errorf("POST %s: got %d %s, want 201", body, r.status, r.body)
		}
	}
}

// The operations that check their query parameters document the 400.
func TestOpenAPIDocumentsQueryRefusals(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(ports.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/orders", "/orders/counts", "/orders/{id}", "/orders/{id}/events"} {
		if _, ok := doc.Paths[path]["get"].Responses["400"]; !ok {
			t.Errorf("GET %s: got no 400 response in openapi.json, want the refusal of query parameters documented", path)
		}
	}
	if !strings.Contains(string(ports.OpenAPI), "case-sensitive") {
		t.Error("openapi.json: got no word of field names being case-sensitive, want the strict body rules stated")
	}
}

// What the strict checks must let through: a surrogate pair escaped whole,
// an escaped backslash before a "u", and escapes of other characters.
func TestStrictJSONAcceptsEscapes(t *testing.T) {
	a := newAPI(t, ports.HTTPConfig{})
	for _, customer := range []string{`c-\ud83d\ude00`, `c-\\ud800`, `c-\u0041\"\/`} {
		body := `{"customer_id":"` + customer + `","items":[{"sku":"SKU-1","quantity":1}]}`
		if r := a.do("POST", "/orders", body, nil); r.status != 201 {
			t.Errorf("customer_id %s: got %d %s, want 201", customer, r.status, r.body)
		}
	}
}
