package jsonbody_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/orderflow/orderflow/pkg/jsonbody"
)

// order is a request of the shape the order API takes: nested objects, an
// array of objects, a pointer, a map.
type order struct {
	CustomerID string            `json:"customer_id"`
	Items      []item            `json:"items"`
	Address    *address          `json:"shipping_address"`
	Labels     map[string]string `json:"labels"`
	Count      *int              `json:"count"`
	Small      uint8             `json:"small"`
	Rate       float64           `json:"rate"`
	Gift       bool              `json:"gift"`
	Note       json.RawMessage   `json:"note"`
	Ignored    string            `json:"-"`
}

type item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

type address struct {
	City    string `json:"city"`
	Country string `json:"country"`
}

const items = `"items":[{"sku":"SKU-1","quantity":2}]`

// Decode refuses each body encoding/json (v1) would take, or take apart
// differently than sent, with an *Error naming the member at fault.
func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		name, body    string
		field, detail string
	}{
		{"empty", "", "", "request body is empty; want a JSON object"},
		{"blank", " \n\t", "", "request body is empty; want a JSON object"},
		{"null", "null", "", "request body is not a JSON object"},
		{"an array", `[{"customer_id":"c"}]`, "", "request body is not a JSON object"},
		{"a string", `"c"`, "", "request body is not a JSON object"},
		{"invalid UTF-8 in a value", "{\"customer_id\":\"c\xff\"," + items + "}", "",
			"request body is not valid UTF-8: byte 0xff at offset 17"},
		{"invalid UTF-8 in a key", "{\"customer_id\":\"c\"," + items + ",\"x\xc3\":1}", "",
			"request body is not valid UTF-8: byte 0xc3 at offset 60"},
		{"a surrogate half spelt in UTF-8", "{\"customer_id\":\"\xed\xa0\x80\"}", "",
			"request body is not valid UTF-8: byte 0xed at offset 16"},
		{"a lone high surrogate escaped", `{"customer_id":"c\ud800"}`, "",
			`request body escapes half a UTF-16 surrogate pair without the other half (\ud800 at offset 17); it would be stored as U+FFFD`},
		{"a lone low surrogate escaped", `{"customer_id":"c\uDC00x"}`, "",
			`request body escapes half a UTF-16 surrogate pair without the other half (\uDC00 at offset 17); it would be stored as U+FFFD`},
		{"a high surrogate before a non-surrogate", `{"customer_id":"\ud83d\u0041"}`, "",
			`request body escapes half a UTF-16 surrogate pair without the other half (\ud83d at offset 16); it would be stored as U+FFFD`},
		{"a lone surrogate in a key", `{"customer_id":"c","labels":{"\ud800":"x"}}`, "",
			`request body escapes half a UTF-16 surrogate pair without the other half (\ud800 at offset 30); it would be stored as U+FFFD`},
		{"truncated", `{"customer_id":`, "", "truncated JSON"},
		{"invalid JSON", `{"customer_id":x}`, "", "invalid JSON at byte 16: invalid character 'x' looking for beginning of value"},
		{"data after the object", `{"customer_id":"c"} {"customer_id":"d"}`, "", "data after the JSON object"},
		{"a stray bracket after the object", `{"customer_id":"c"}]`, "", "data after the JSON object"},
		{"a stray brace after the object", `{"customer_id":"c"}}`, "", "data after the JSON object"},
		{"duplicate key", `{"customer_id":"c-1","customer_id":"c-2"}`, "customer_id",
			"is given more than once; give each field once"},
		{"duplicate key spelt with an escape", `{"customer_id":"c-1","customer_\u0069d":"c-2"}`, "customer_id",
			"is given more than once; give each field once"},
		{"duplicate key in an item", `{"items":[{"sku":"SKU-1","quantity":1},{"sku":"SKU-1","quantity":1,"quantity":9}]}`, "items[1].quantity",
			"is given more than once; give each field once"},
		{"duplicate key in an object", `{"shipping_address":{"city":"A","city":"B"}}`, "shipping_address.city",
			"is given more than once; give each field once"},
		{"duplicate key in a map", `{"labels":{"a":"1","a":"2"}}`, "labels.a",
			"is given more than once; give each field once"},
		{"duplicate key inside a raw value", `{"note":{"a":1,"a":2}}`, "note.a",
			"is given more than once; give each field once"},
		{"field name in another case", `{"Customer_ID":"c-1"}`, "Customer_ID",
			`is not a known field; did you mean "customer_id"? (field names are case-sensitive)`},
		{"field name in another case in an item", `{"items":[{"SKU":"SKU-1","quantity":1}]}`, "items[0].SKU",
			`is not a known field; did you mean "sku"? (field names are case-sensitive)`},
		{"field name folded by Unicode (long s)", `{"items":[{"ſku":"SKU-1","quantity":1}]}`, "items[0].ſku",
			`is not a known field; did you mean "sku"? (field names are case-sensitive)`},
		{"two spellings of one field", `{"customer_id":"c-1","CUSTOMER_ID":"c-2"}`, "CUSTOMER_ID",
			`is not a known field; did you mean "customer_id"? (field names are case-sensitive)`},
		{"unknown field", `{"customer_id":"c","coupon":"x"}`, "coupon", "is not a known field"},
		{"unknown field in an object", `{"shipping_address":{"town":"A"}}`, "shipping_address.town", "is not a known field"},
		{"a field the type leaves out", `{"Ignored":"x"}`, "Ignored", "is not a known field"},
		{"fraction for an integer", `{"count":1.5}`, "count", "must be of type integer, got number 1.5"},
		{"string for an integer", `{"count":"2"}`, "count", "must be of type integer, got string"},
		{"a fraction written with an exponent for an integer", `{"count":25e-1}`, "count", "must be of type integer, got number 25e-1"},
		{"a tiny fraction for an integer", `{"count":1e-999999999999}`, "count", "must be of type integer, got number 1e-999999999999"},
		{"boolean for an integer", `{"count":true}`, "count", "must be of type integer, got boolean"},
		{"integer out of range", `{"count":9223372036854775808}`, "count",
			"must be an integer from -9223372036854775808 to 9223372036854775807, got 9223372036854775808"},
		{"integer out of range, with an exponent", `{"count":1e400}`, "count",
			"must be an integer from -9223372036854775808 to 9223372036854775807, got 1e400"},
		{"negative for an unsigned integer", `{"small":-1}`, "small", "must be an integer from 0 to 255, got -1"},
		{"too large for a small integer", `{"small":256}`, "small", "must be an integer from 0 to 255, got 256"},
		{"too large for a small integer, written 2.56e2", `{"small":2.56e2}`, "small", "must be an integer from 0 to 255, got 2.56e2"},
		{"number out of range", `{"rate":-1e400}`, "rate",
			"must be a number from -1.7976931348623157e+308 to 1.7976931348623157e+308, got -1e400"},
		{"number for a string", `{"customer_id":7}`, "customer_id", "must be of type string, got number"},
		{"boolean for a string", `{"customer_id":false}`, "customer_id", "must be of type string, got boolean"},
		{"string for a number", `{"rate":"0.5"}`, "rate", "must be of type number, got string"},
		{"number for a boolean", `{"gift":1}`, "gift", "must be of type boolean, got number"},
		{"object for an array", `{"items":{}}`, "items", "must be of type array, got object"},
		{"string for an object", `{"shipping_address":"x"}`, "shipping_address", "must be of type object, got string"},
		{"array for a map", `{"labels":[]}`, "labels", "must be of type object, got array"},
		{"a type error in an item", `{"items":[{"sku":"SKU-1","quantity":1},{"sku":"SKU-2","quantity":"1"}]}`, "items[1].quantity",
			"must be of type integer, got string"},
		{"an item not an object", `{"items":[{"sku":"SKU-1","quantity":1},7]}`, "items[1]", "must be of type object, got number"},
		{"a value of another type in a map", `{"labels":{"a":"1","b":2}}`, "labels.b", "must be of type string, got number"},
		{"the first fault in the body's order: a name's case", `{"items":[{"SKU":"a","quantity":1,"x":1}]}`, "items[0].SKU",
			`is not a known field; did you mean "sku"? (field names are case-sensitive)`},
		{"the first fault in the body's order: a type", `{"count":"x","coupon":1}`, "count", "must be of type integer, got string"},
		{"the first fault in the body's order: an unknown field", `{"coupon":1,"count":"x"}`, "coupon", "is not a known field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v order
			err := jsonbody.Decode([]byte(tc.body), &v)
			var e *jsonbody.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v (%T), want a *jsonbody.Error", err, err)
			}
			if e.Field != tc.field || e.Detail != tc.detail {
				t.Errorf("got field %q detail %q\nwant field %q detail %q", e.Field, e.Detail, tc.field, tc.detail)
			}
			want := tc.detail
			if tc.field != "" {
				want = tc.field + ": " + tc.detail
			}
			if err.Error() != want {
				t.Errorf("Error(): got %q, want %q", err.Error(), want)
			}
			for _, s := range []string{"Go ", "struct", "json:", "int64", "uint8", "float64"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("Error(): got %q, want no %q (Go's words, not the client's)", err.Error(), s)
				}
			}
		})
	}
}

// What strictness leaves alone decodes as encoding/json decodes it:
// members in any order, a name spelt with an escape, escapes of a whole
// surrogate pair or of a backslash before a "u", non-ASCII text, the same
// key in two objects, white space around the object.
func TestDecodeAccepts(t *testing.T) {
	for _, body := range []string{
		`{"items":[{"quantity":1,"sku":"SKU-1"}],"customer_id":"c-é"}`,
		`{"customer_\u0069d":"c",` + items + `}`,
		`{"customer_id":"c-\ud83d\ude00"}`,
		`{"customer_id":"c-\\ud800"}`,
		`{"customer_id":"c-\u0041\"\/"}`,
		`{"customer_id":"c","items":[{"sku":"SKU-1","quantity":1},{"sku":"SKU-2","quantity":1}],"shipping_address":{"city":"Köln","country":"DE"}}`,
		`{"labels":{"Customer_ID":"x","customer_id":"y"}}`, // a map's keys are its own
		`{"count":9223372036854775807,"small":255,"rate":1e-3,"gift":true}`,
		`{"count":-9223372036854775808,"small":0,"rate":1e308}`,
		`{"count":null,"shipping_address":null}`,
		`{"note":{"any":["thing",1,null]}}`,
		" \n{}\n",
		"{}",
	} {
		t.Run(body, func(t *testing.T) {
			var got, want order
			if err := jsonbody.Decode([]byte(body), &got); err != nil {
				t.Fatalf("Decode: got %v, want nil", err)
			}
			if err := json.Unmarshal([]byte(body), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v (as encoding/json decodes it)", got, want)
			}
		})
	}
}

// An integer field takes what JSON Schema 2020-12 calls an integer: any
// number without a fractional part, however written, which encoding/json
// refuses ("cannot unmarshal number 2.0 into int").
func TestDecodeTakesJSONSchemaIntegers(t *testing.T) {
	count := func(n int) *int { return &n }
	tests := []struct {
		body string
		want order
	}{
		{`{"count":2.0}`, order{Count: count(2)}},
		{`{"count":2e0}`, order{Count: count(2)}},
		{`{"count":1e2}`, order{Count: count(100)}},
		{`{"count":1E+2}`, order{Count: count(100)}},
		{`{"count":0.3e1}`, order{Count: count(3)}},
		{`{"count":300e-2}`, order{Count: count(3)}},
		{`{"count":-12.000}`, order{Count: count(-12)}},
		{`{"count":-0.0}`, order{Count: count(0)}},
		{`{"count":92233720368547758070e-1}`, order{Count: count(9223372036854775807)}},
		{`{"small":2.55e2}`, order{Small: 255}},
		{`{"small":-0}`, order{Small: 0}},
		{`{"items":[{"sku":"a","quantity":1.0},{"sku":"b","quantity":2.50e1}],"rate":2.0}`,
			order{Items: []item{{SKU: "a", Quantity: 1}, {SKU: "b", Quantity: 25}}, Rate: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.body, func(t *testing.T) {
			var got order
			if err := jsonbody.Decode([]byte(tc.body), &got); err != nil {
				t.Fatalf("Decode: got %v, want nil", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A number beyond its field's range is the one fault of a well-formed
// body of the expected shape: the error says so (OutOfRange, the number
// as sent), for an API that answers it as a value it does not take.
func TestDecodeOutOfRange(t *testing.T) {
	tests := []struct {
		body, field, outOfRange string
	}{
		{`{"count":1e400}`, "count", "1e400"},
		{`{"count":-9223372036854775809}`, "count", "-9223372036854775809"},
		{`{"items":[{"quantity":1},{"quantity":1e19}]}`, "items[1].quantity", "1e19"},
		{`{"small":-1.0}`, "small", "-1.0"},
		{`{"rate":1e309}`, "rate", "1e309"},
		{`{"count":1.5}`, "count", ""},
		{`{"count":"1e400"}`, "count", ""},
		{`{"coupon":1e400}`, "coupon", ""},
	}
	for _, tc := range tests {
		var v order
		var e *jsonbody.Error
		if err := jsonbody.Decode([]byte(tc.body), &v); !errors.As(err, &e) || e.Field != tc.field || e.OutOfRange != tc.outOfRange {
			t.Errorf("Decode(%s): got %#v, want field %q, OutOfRange %q", tc.body, err, tc.field, tc.outOfRange)
		}
	}
}

// FuzzDecode checks that Decode never panics, and that a body it accepts
// is valid UTF-8 and decodes to what encoding/json makes of it, or, where
// encoding/json refuses a number for an integer field (2.0, 1e2), to
// numbers of the same value.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"customer_id":"c",` + items + `}`,
		`{"customer_id":"c","customer_id":"d"}`,
		`{"Customer_ID":"c"}`,
		`{"customer_id":"c\ud800"}`,
		`{"customer_id":"c-\ud83d\ude00"}`,
		`{"count":1.5}`,
		`{"count":2.0,"items":[{"quantity":1e2}]}`,
		`{"count":9223372036854775808}`,
		`{"labels":{"a":"1","a":"2"}}`,
		`{"note":{"a":[1,{"b":2}]}}`,
		`{"customer_id":"c"}]`,
		"{\"customer_id\":\"\xff\"}",
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got order
		err := jsonbody.Decode(body, &got)
		if err != nil {
			var e *jsonbody.Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode(%q): got %v (%T), want a *jsonbody.Error", body, err, err)
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("Decode(%q): accepted invalid UTF-8", body)
		}
		var want order
		err = json.Unmarshal(body, &want)
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) && strings.HasPrefix(typ.Value, "number ") {
			// An integer written otherwise than in decimal: got's
			// members hold the same values as body's.
			var gotJSON, bodyJSON any
			encoded, _ := json.Marshal(got)
			if json.Unmarshal(encoded, &gotJSON) != nil || json.Unmarshal(body, &bodyJSON) != nil {
				t.Fatalf("Decode(%q): got %+v, which does not encode back", body, got)
			}
			if !sameNumbers(gotJSON, bodyJSON) {
				t.Fatalf("Decode(%q): got %s, want the body's values", body, encoded)
			}
			return
		}
		if err != nil {
			t.Fatalf("Decode(%q) accepted what encoding/json refuses: %v", body, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%q): got %+v, want %+v", body, got, want)
		}
	})
}

// sameNumbers reports whether every member of body, decoded as any, that
// got has too (encoded from the decoded value, so with every field) holds
// the same value: numbers compared as float64s, null taken for a field's
// zero value.
func sameNumbers(got, body any) bool {
	switch b := body.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range b {
			if !sameNumbers(g[k], v) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(b) {
			return false
		}
		for i := range b {
			if !sameNumbers(g[i], b[i]) {
				return false
			}
		}
		return true
	case nil:
		return true
	}
	return reflect.DeepEqual(got, body)
}
