package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/queue/backend"
)

// The bodies encoding/json (v1) takes without a word are refused with a
// 400, as the order API refuses them, and change nothing: a field given
// twice (v1 keeps the last: a purge of another topic than the first
// named), a field name in another case (v1 matches names
// case-insensitively), invalid UTF-8 and an escaped lone surrogate (v1
// stores U+FFFD).
func TestBodiesAreReadStrictly(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		field, detail            string
	}{
		{"fault value twice", "PUT", "/faults/payment_decline_rate", `{"value":"0","value":"1"}`,
			"value", "value: is given more than once; give each field once"},
		{"fault value twice, spelt with an escape", "POST", "/faults/payment_decline_rate", `{"value":"0","v\u0061lue":"1"}`,
			"value", "value: is given more than once; give each field once"},
		{"fault value in another case", "PUT", "/faults/payment_decline_rate", `{"Value":"1"}`,
			"Value", `Value: is not a known field; did you mean "value"? (field names are case-sensitive)`},
		{"fault value: invalid UTF-8", "PUT", "/faults/payment_decline_rate", "{\"value\":\"1\xff\"}",
			"", "request body is not valid UTF-8: byte 0xff at offset 11"},
		{"fault value: a lone surrogate", "PUT", "/faults/payment_decline_rate", `{"value":"1\ud800"}`,
			"", `request body escapes half a UTF-16 surrogate pair without the other half (\ud800 at offset 11); it would be stored as U+FFFD`},
		{"purge: topic twice", "DELETE", "/dlq", `{"topic":"x","topic":"payment.commands"}`,
			"topic", "topic: is given more than once; give each field once"},
		{"purge: group in another case", "DELETE", "/dlq", `{"Group":"payment"}`,
			"Group", `Group: is not a known field; did you mean "group"? (field names are case-sensitive)`},
		{"replay: topic twice", "POST", "/dlq/replay", `{"topic":"payment.commands","topic":"other.topic"}`,
			"topic", "topic: is given more than once; give each field once"},
		{"replay: a lone low surrogate", "POST", "/dlq/replay", `{"group":"\udc00"}`,
			"", `request body escapes half a UTF-16 surrogate pair without the other half (\udc00 at offset 10); it would be stored as U+FFFD`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			putDeadLetter(t, f.b, "payment.commands", "payment", "m-1")
			code, _, raw := f.do(t, tc.method, tc.path, tc.body)
			if code != http.StatusBadRequest {
				t.Fatalf("status: got %d %s, want 400", code, raw)
			}
			var p admin.Problem
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("problem %s: %v", raw, err)
			}
			if p.Field != tc.field {
				t.Errorf("field: got %q, want %q", p.Field, tc.field)
			}
			if p.Detail != tc.detail {
				t.Errorf("detail:\n got %q\nwant %q", p.Detail, tc.detail)
			}
			if got := f.reg.Rate(faults.PaymentDeclineRate); got != 0 {
				t.Errorf("payment_decline_rate after the refused request: got %v, want 0 (unchanged)", got)
			}
			dls, err := f.b.DeadLetters().List(context.Background(), backend.DeadLetterFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(dls) != 1 {
				t.Errorf("dead letters after the refused request: got %d, want 1 (kept, not replayed)", len(dls))
			}
		})
	}

	// What strictness leaves alone still passes: a surrogate pair escaped
	// whole, an escaped backslash before a "u", a name spelt with an
	// escape, non-ASCII text.
	f := newFixture(t, nil)
	for _, body := range []string{`{"value":"0.5"}`, `{"v\u0061lue":"0.5"}`, `{"value":0.5}`, `{"value": "0.5" }`} {
		if code, _, raw := f.do(t, "PUT", "/faults/payment_decline_rate", body); code != 200 {
			t.Errorf("PUT %s: got %d %s, want 200", body, code, raw)
		}
	}
	for _, body := range []string{`{"group":"g-\ud83d\ude00"}`, `{"group":"g-\\ud800"}`, `{"group":"Zoë"}`, `{"topic":"payment.commands","group":"payment"}`} {
		if code, _, raw := f.do(t, "POST", "/dlq/replay", body); code != 200 {
			t.Errorf("POST /dlq/replay %s: got %d %s, want 200", body, code, raw)
		}
	}
}

// A string flag (inventory's SKU list) takes no control characters: an
// ANSI escape sent as \u001b would be stored, and shown by the console and
// in logs as a terminal command.
func TestFaultValueRefusesControlCharacters(t *testing.T) {
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags("inventory")})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Service: "inventory", Faults: reg})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"value":"SKU-2\u001b[31m"}`,
		`{"value":"SKU-1,\u0000SKU-2"}`,
		`{"value":"SKU-1\u0085SKU-2"}`, // a C1 control (NEL), inside: around the value, spaces are trimmed
		"{\"value\":\"SKU-1\\nSKU-2\"}",
	} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/faults/"+faults.InventoryOutOfStockSKUs, strings.NewReader(body)))
		var p admin.Problem
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != http.StatusBadRequest || p.Field != "value" || !strings.Contains(p.Detail, "control or bidirectional formatting characters") {
			t.Errorf("PUT %s: got %d %s, want 400 on field value naming the control character", body, rec.Code, rec.Body)
		}
	}
	if got := reg.List(faults.InventoryOutOfStockSKUs); len(got) != 0 {
		t.Errorf("out-of-stock SKUs after the refused requests: got %q, want none", got)
	}
}

// A problem's detail says what is wrong with which field, in words for the
// client: the field once, then what is wrong with it; no Go type names, no
// internal prefixes ("bad request: ", "invalid fault flag value: …: ").
func TestProblemDetailsSayWhatIsWrong(t *testing.T) {
	tests := []struct {
		method, path, body string
		status             int
		field, detail      string
	}{
		{"PUT", "/faults/payment_decline_rate", `{"value":"2"}`, 400,
			"value", "value: rate must be between 0 and 1, got 2"},
		{"PUT", "/faults/payment_decline_rate", `{"value":"half"}`, 400,
			"value", `value: "half" is not a number`},
		{"PUT", "/faults/payment_latency", `{"value":"5"}`, 400,
			"value", `value: "5" is not a duration such as 250ms or 2s`},
		{"PUT", "/faults/payment_latency", `{"value":"11m"}`, 400,
			"value", "value: must not exceed 10m"},
		{"PUT", "/faults/crash_mid_handler", `{"value":"yes"}`, 400,
			"value", `value: "yes" is not true or false`},
		{"PUT", "/faults/payment_decline_rate", `{}`, 400,
			"value", `value: is required and must not be null, e.g. {"value": "0.5"}`},
		{"PUT", "/faults/payment_decline_rate", `{"value":[1]}`, 400,
			"value", "value: must be a string, a number or a boolean"},
		{"PUT", "/faults/payment_decline_rate", `{"value":"0.5","extra":1}`, 400,
			"extra", "extra: is not a known field"},
		{"PUT", "/faults/payment_decline_rate", `{"value":`, 400,
			"", "truncated JSON"},
		{"PUT", "/faults/payment_decline_rate", `{"value":x}`, 400,
			"", "invalid JSON at byte 10: invalid character 'x' looking for beginning of value"},
		{"PUT", "/faults/payment_decline_rate", `["0.5"]`, 400,
			"", "request body is not a JSON object"},
		{"DELETE", "/dlq", `{"topic":null}`, 400,
			"topic", "topic: is null; leave it out to select every topic"},
		{"DELETE", "/dlq", `{"group":""}`, 400,
			"group", "group: is empty; leave it out to select every group"},
		{"POST", "/dlq/replay", `{"topic":7}`, 400,
			"topic", "topic: must be a string"},
		{"GET", "/dlq?limit=x", "", 400,
			"limit", `limit: must be an integer from 1 to 1000, got "x"`},
		{"GET", "/dlq/abc", "", 400,
			"id", `id: must be a positive integer, got "abc"`},
		{"GET", "/missing", "", 404,
			"", "payment p-1"},
	}
	f := newFixture(t, nil)
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path+" "+tc.body, func(t *testing.T) {
			code, _, raw := f.do(t, tc.method, tc.path, tc.body)
			var p admin.Problem
			if err := json.Unmarshal(raw, &p); err != nil || code != tc.status {
				t.Fatalf("got %d %s (%v), want a %d problem", code, raw, err, tc.status)
			}
			if p.Field != tc.field || p.Detail != tc.detail {
				t.Errorf("got field %q detail %q\nwant field %q detail %q", p.Field, p.Detail, tc.field, tc.detail)
			}
		})
	}
}
