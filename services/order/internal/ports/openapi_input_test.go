package ports

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
	"github.com/orderflow/orderflow/services/order/internal/ordertest"
)

// The tests of this file hold the OpenAPI document and the server to the
// same rules for what a request may send: what the schema allows is
// taken, what it does not is refused.

// docValue is the value at the JSON pointer ptr ("/components/schemas/
// Order/required") of the document.
func docValue(t *testing.T, ptr string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(OpenAPI, &v); err != nil {
		t.Fatal(err)
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i := slices.IndexFunc(x, func(e any) bool {
				m, ok := e.(map[string]any)
				return ok && m["name"] == tok // a parameter, by name
			})
			if i < 0 {
				t.Fatalf("%s: no %q", ptr, tok)
			}
			v = x[i]
		default:
			t.Fatalf("%s: %q is not in an object or array", ptr, tok)
		}
	}
	if v == nil {
		t.Fatalf("%s: nothing there", ptr)
	}
	return v
}

// docPattern compiles the pattern of the schema at ptr, written for
// ECMA-262 as JSON Schema says, with Go's regexp: the patterns of the
// document use only what both read alike, but for \uXXXX, which Go spells
// \x{XXXX}.
func docPattern(t *testing.T, ptr string) *regexp.Regexp {
	t.Helper()
	s, ok := docValue(t, ptr+"/pattern").(string)
	if !ok {
		t.Fatalf("%s: pattern is not a string", ptr)
	}
	re, err := regexp.Compile(regexp.MustCompile(`\\u([0-9A-Fa-f]{4})`).ReplaceAllString(s, `\x{$1}`))
	if err != nil {
		t.Fatalf("%s: pattern %q: %v", ptr, s, err)
	}
	return re
}

// Strings around the edges of the text rules: blank (as strings.TrimSpace
// sees it), control characters, what is neither.
var textSamples = []string{
	"c-1", "x", " x ", "é", "日本", "😀", "a b",
	" ", "  ", "\t", "\u00a0", "\u3000", "\u2028", "\u2029", "\u1680", "\u202f", "\u205f", "\u2000\u200a",
	"\ufeff", "\u180e", "\u200b",
	"a\tb", "x\n", "\x00", "\x1b[31m", "a\x7fb", "a\u0085b", "\u009f", "\u00a0x\u3000",
}

// The patterns of the document's strings say what the server takes:
// customer_id and the address's name, line1 and city not blank, and none
// of them, nor line2, postal_code or a cancellation's reason, with a
// control character. customer_id " " met minLength 1 but got 422.
func TestOpenAPITextPatternsAreTheServers(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	e, err := NewHTTPHandler(HTTPConfig{App: env.App})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path string, body any) (int, Problem) {
		t.Helper()
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(string(b))))
		var p Problem
		if rec.Code >= 400 {
			_ = json.Unmarshal(rec.Body.Bytes(), &p)
		}
		return rec.Code, p
	}
	address := func(field, v string) map[string]any {
		a := map[string]any{"name": "Ada", "line1": "1 Loop Rd", "city": "Berlin", "country": "DE"}
		a[field] = v
		return a
	}
	items := []map[string]any{{"sku": "SKU-1", "quantity": 1}}
	cancelled := env.Place()
	tests := []struct {
		field, schema string
		send          func(v string) (int, Problem)
		ok            int
	}{
		{"customer_id", "/components/schemas/PlaceOrderRequest/properties/customer_id", func(v string) (int, Problem) {
			return do("POST", "/orders", map[string]any{"customer_id": v, "items": items})
		}, http.StatusCreated},
	}
	for _, f := range []string{"name", "line1", "line2", "city", "postal_code"} {
		tests = append(tests, struct {
			field, schema string
			send          func(v string) (int, Problem)
			ok            int
		}{"shipping_address." + f, "/components/schemas/Address/properties/" + f, func(v string) (int, Problem) {
			return do("POST", "/orders", map[string]any{"customer_id": "c", "items": items, "shipping_address": address(f, v)})
		}, http.StatusCreated})
	}
	tests = append(tests, struct {
		field, schema string
		send          func(v string) (int, Problem)
		ok            int
	}{"reason", "/paths/~1orders~1{id}~1cancel/post/requestBody/content/application~1json/schema/properties/reason", func(v string) (int, Problem) {
		return do("POST", "/orders/"+cancelled+"/cancel", map[string]any{"reason": v})
	}, http.StatusOK})

	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			re := docPattern(t, tc.schema)
			for _, v := range textSamples {
				status, p := tc.send(v)
				taken := status == tc.ok
				if !taken && (status != http.StatusUnprocessableEntity || !slices.ContainsFunc(p.Errors, func(f FieldProblem) bool { return f.Field == tc.field })) {
					t.Errorf("%s %q: got %d %+v, want %d or 422 naming it", tc.field, v, status, p, tc.ok)
					continue
				}
				if schemaOK := re.MatchString(v); schemaOK != taken {
					t.Errorf("%s %q: the document's pattern says %v, the server %d", tc.field, v, schemaOK, status)
				}
			}
		})
	}
}

// The Idempotency-Key's pattern is the server's rule: 1 to 255 printable
// ASCII characters, no space first or last. The document gave only the
// length.
func TestOpenAPIIdempotencyKeyPatternIsTheServers(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	e, err := NewHTTPHandler(HTTPConfig{App: env.App})
	if err != nil {
		t.Fatal(err)
	}
	re := docPattern(t, "/paths/~1orders/post/parameters/Idempotency-Key/schema")
	for i, key := range []string{
		"k", "k-1", "a b", "~!@#$%^&*()", strings.Repeat("k", 255),
		strings.Repeat("k", 256), " k", "k ", "a\tb", "clé", "a\x7fb", "\x00", "日本",
	} {
		rec := httptest.NewRecorder()
		body := `{"customer_id":"c-` + strings.Repeat("x", i) + `","items":[{"sku":"SKU-1","quantity":1}]}`
		req := httptest.NewRequest("POST", "/orders", strings.NewReader(body))
		req.Header[HeaderIdempotencyKey] = []string{key} // raw: as a client's bytes reach the handler
		e.ServeHTTP(rec, req)
		taken := rec.Code == http.StatusCreated
		if !taken && (rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"field":"Idempotency-Key"`)) {
			t.Errorf("key %q: got %d %s, want 201 or 422 naming Idempotency-Key", key, rec.Code, rec.Body)
			continue
		}
		if schemaOK := re.MatchString(key); schemaOK != taken {
			t.Errorf("key %q: the document's pattern says %v, the server %d", key, schemaOK, rec.Code)
		}
	}
}

// ?status= takes a status in any case, as the README says, in ASCII: the
// document's pattern says so. It listed the upper-case enum only, and the
// server read a status through Unicode's upper case ("ſtock_reserved" was
// STOCK_RESERVED).
func TestOpenAPIStatusParameterIsTheServers(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	e, err := NewHTTPHandler(HTTPConfig{App: env.App})
	if err != nil {
		t.Fatal(err)
	}
	re := docPattern(t, "/paths/~1orders/get/parameters/status/schema")
	samples := []string{"shipped", "PENDıNG", "ſtock_reserved", "pending ", "STOCK-RESERVED", "COMPLETED,CANCELLED"}
	for _, s := range app.Statuses() {
		samples = append(samples, string(s), strings.ToLower(string(s)), strings.ToUpper(string(s[:1]))+strings.ToLower(string(s[1:])))
	}
	for _, s := range samples {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest("GET", "/orders?status="+url.QueryEscape(s), nil))
		taken := rec.Code == http.StatusOK
		if !taken && (rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"field":"status"`)) {
			t.Errorf("status %q: got %d %s, want 200 or 422 naming status", s, rec.Code, rec.Body)
			continue
		}
		if schemaOK := re.MatchString(s); schemaOK != taken {
			t.Errorf("status %q: the document's pattern says %v, the server %d", s, schemaOK, rec.Code)
		}
	}
}

// An optional member sent as null is taken as left out, and the
// document's schema allows null there; a required one sent as null is
// refused as missing (422), and the schema does not allow it. The
// schema allowed null nowhere, yet shipping_address, line2, postal_code
// and reason took it.
func TestOpenAPINullsAreTheServers(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	e, err := NewHTTPHandler(HTTPConfig{App: env.App})
	if err != nil {
		t.Fatal(err)
	}
	id := env.Place()
	const addr = `"name":"Ada","line1":"1 Loop Rd","city":"Berlin","country":"DE"`
	tests := []struct {
		field, schema, path, body string
		taken                     bool
	}{
		{"shipping_address", "/components/schemas/PlaceOrderRequest/properties/shipping_address", "/orders",
			`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1}],"shipping_address":null}`, true},
		{"shipping_address.line2", "/components/schemas/Address/properties/line2", "/orders",
			`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1}],"shipping_address":{` + addr + `,"line2":null}}`, true},
		{"shipping_address.postal_code", "/components/schemas/Address/properties/postal_code", "/orders",
			`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1}],"shipping_address":{` + addr + `,"postal_code":null}}`, true},
		{"reason", "/paths/~1orders~1{id}~1cancel/post/requestBody/content/application~1json/schema/properties/reason", "/orders/" + id + "/cancel",
			`{"reason":null}`, true},
		{"customer_id", "/components/schemas/PlaceOrderRequest/properties/customer_id", "/orders",
			`{"customer_id":null,"items":[{"sku":"SKU-1","quantity":1}]}`, false},
		{"items", "/components/schemas/PlaceOrderRequest/properties/items", "/orders",
			`{"customer_id":"c","items":null}`, false},
		{"items[0].sku", "/components/schemas/PlaceOrderRequest/properties/items/items/properties/sku", "/orders",
			`{"customer_id":"c","items":[{"sku":null,"quantity":1}]}`, false},
		{"items[0].quantity", "/components/schemas/PlaceOrderRequest/properties/items/items/properties/quantity", "/orders",
			`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":null}]}`, false},
		{"shipping_address.city", "/components/schemas/Address/properties/city", "/orders",
			`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1}],"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":null,"country":"DE"}}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body)))
			if taken := rec.Code < 300; taken != tc.taken {
				t.Errorf("%s: got %d %s, want taken %v", tc.body, rec.Code, rec.Body, tc.taken)
			}
			if !tc.taken && (rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"field":"`+tc.field+`"`)) {
				t.Errorf("%s: got %d %s, want 422 naming %s", tc.body, rec.Code, rec.Body, tc.field)
			}
			if got := allowsNull(docValue(t, tc.schema)); got != tc.taken {
				t.Errorf("schema of %s allows null: got %v, want %v", tc.field, got, tc.taken)
			}
		})
	}
}

// allowsNull reports whether a schema takes null: by its type, or by one
// of its anyOf.
func allowsNull(schema any) bool {
	m, _ := schema.(map[string]any)
	switch ty := m["type"].(type) {
	case string:
		return ty == "null"
	case []any:
		return slices.Contains(ty, any("null"))
	}
	for _, s := range asSlice(m["anyOf"]) {
		if allowsNull(s) {
			return true
		}
	}
	return false
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// The document's answers list as required exactly the members the server
// always sends (those its types do not omit when empty), and as
// properties every member it may send. Order had no required list: a
// client could rely on none of its fields.
func TestOpenAPIRequiredMembersAreTheServers(t *testing.T) {
	tests := []struct {
		schema string
		typ    reflect.Type
	}{
		{"/components/schemas/Order", reflect.TypeFor[app.OrderView]()},
		{"/components/schemas/Order/properties/items/items", reflect.TypeFor[domain.Item]()},
		{"/components/schemas/Address", reflect.TypeFor[domain.Address]()},
		{"/paths/~1orders/get/responses/200/content/application~1json/schema", reflect.TypeFor[app.OrderPage]()},
		{"/paths/~1orders~1counts/get/responses/200/content/application~1json/schema", reflect.TypeFor[countsResponse]()},
		{"/paths/~1orders~1{id}~1events/get/responses/200/content/application~1json/schema", reflect.TypeFor[eventsResponse]()},
		{"/paths/~1orders~1{id}~1events/get/responses/200/content/application~1json/schema/properties/events/items", reflect.TypeFor[app.EventRecord]()},
	}
	for _, tc := range tests {
		t.Run(tc.typ.String(), func(t *testing.T) {
			schema := docValue(t, tc.schema).(map[string]any)
			var required, all []string
			for i := range tc.typ.NumField() {
				f := tc.typ.Field(i)
				name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "-" || !f.IsExported() {
					continue
				}
				all = append(all, name)
				if !slices.Contains(strings.Split(opts, ","), "omitempty") {
					required = append(required, name)
				}
			}
			var gotRequired, gotAll []string
			for _, r := range asSlice(schema["required"]) {
				gotRequired = append(gotRequired, r.(string))
			}
			props, _ := schema["properties"].(map[string]any)
			for p := range props {
				gotAll = append(gotAll, p)
			}
			slices.Sort(required)
			slices.Sort(gotRequired)
			slices.Sort(all)
			slices.Sort(gotAll)
			if !slices.Equal(gotRequired, required) {
				t.Errorf("%s required: got %q, want %q", tc.schema, gotRequired, required)
			}
			if !slices.Equal(gotAll, all) {
				t.Errorf("%s properties: got %q, want %q", tc.schema, gotAll, all)
			}
		})
	}
}

// JSON Schema's integer is a number with no fractional part, however it
// is written: a quantity of 1.0 or 1e2 is an integer, and is taken. It was
// refused with 400 "must be of type integer".
func TestQuantityIsAJSONSchemaInteger(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	e, err := NewHTTPHandler(HTTPConfig{App: env.App})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		quantity string
		status   int
		want     int    // the order's quantity, when placed
		detail   string // the problem's, when refused
	}{
		{"1.0", 201, 1, ""},
		{"1e2", 201, 100, ""},
		{"2.50e1", 201, 25, ""},
		{"0.3E+1", 201, 3, ""},
		{"300e-2", 201, 3, ""},
		{"1.5", 400, 0, "malformed request: items[0].quantity: must be of type integer, got number 1.5"},
		{"1e-1", 400, 0, "malformed request: items[0].quantity: must be of type integer, got number 1e-1"},
		{`"2"`, 400, 0, "malformed request: items[0].quantity: must be of type integer, got string"},
		{"true", 400, 0, "malformed request: items[0].quantity: must be of type integer, got boolean"},
		{"[1]", 400, 0, "malformed request: items[0].quantity: must be of type integer, got array"},
		{`{"n":1}`, 400, 0, "malformed request: items[0].quantity: must be of type integer, got object"},
		{"0.0", 422, 0, "invalid order: items[0].quantity must be positive, got 0; items total must be positive"},
		{"1001.0", 422, 0, "invalid order: items[0].quantity must be at most 1000, got 1001"},
		{"9223372036854775807", 422, 0, "invalid order: items[0].quantity must be at most 1000, got 9223372036854775807; items total is too large"},
		{"1e400", 422, 0, "invalid order: items[0].quantity must be at most 1000, got 1e400"},
		{"-1e400", 422, 0, "invalid order: items[0].quantity must be positive, got -1e400"},
	}
	for i, tc := range tests {
		t.Run(tc.quantity, func(t *testing.T) {
			body := `{"customer_id":"c-` + strings.Repeat("x", i) + `","items":[{"sku":"SKU-3","quantity":` + tc.quantity + `}]}`
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest("POST", "/orders", strings.NewReader(body)))
			if rec.Code != tc.status {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tc.status)
			}
			if tc.status == http.StatusCreated {
				var v app.OrderView
				if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || len(v.Items) != 1 || v.Items[0].Quantity != tc.want {
					t.Errorf("order: got %s (%v), want one item of quantity %d", rec.Body, err, tc.want)
				}
				return
			}
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Field != "items[0].quantity" || p.Detail != tc.detail {
				t.Errorf("problem: got %s (%v), want items[0].quantity and detail %q", rec.Body, err, tc.detail)
			}
		})
	}
}
