package admin_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/pkg/admin"
)

// CheckQuery refuses, naming it, a parameter the route does not take, one
// given more than once and one given empty; the first by name when
// several are at fault.
func TestCheckQuery(t *testing.T) {
	tests := []struct {
		name, query   string
		known         []string
		field, detail string // "" field: accepted
	}{
		{"nothing", "", nil, "", ""},
		{"known ones", "topic=a&group=b", []string{"topic", "group"}, "", ""},
		{"none known, one sent", "x=1", nil, "x", `unknown query parameter "x" (this route takes none)`},
		{"misspelt", "topics=a", []string{"topic", "group"}, "topics", `unknown query parameter "topics" (known: topic, group)`},
		{"repeated", "topic=a&topic=b", []string{"topic"}, "topic", "query parameter topic is given 2 times; give it once"},
		{"repeated, the same", "topic=a&topic=a", []string{"topic"}, "topic", "query parameter topic is given 2 times; give it once"},
		{"empty", "topic=", []string{"topic"}, "topic", "query parameter topic is empty; leave it out, or give it a value"},
		{"bare name", "topic", []string{"topic"}, "topic", "query parameter topic is empty; leave it out, or give it a value"},
		{"several at fault", "z=1&b=&a=1&a=2", []string{"a", "b"}, "a", "query parameter a is given 2 times; give it once"},
		// url.URL.Query drops these pairs: the route would see no topic.
		{"bad escape", "topic=a%zz", []string{"topic"}, "query", `the query string does not decode: invalid URL escape "%zz"`},
		{"semicolon", "topic=a;b", []string{"topic"}, "query", "the query string does not decode: invalid semicolon separator in query"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := admin.CheckQuery(tc.query, tc.known...)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			var fe *admin.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, admin.ErrBadRequest) {
				t.Fatalf("got %v, want a FieldError wrapping ErrBadRequest", err)
			}
			if fe.Field != tc.field || fe.Err.Error() != tc.detail {
				t.Errorf("got field %q detail %q, want %q %q", fe.Field, fe.Err.Error(), tc.field, tc.detail)
			}
			if got := admin.StatusOf(err); got != 400 {
				t.Errorf("status: got %d, want 400", got)
			}
		})
	}
}

// A filter of the dead letters given twice is refused rather than read as
// its first value: a purge must select what its caller meant.
func TestDeadLetterFilterGivenTwice(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct{ method, path, field string }{
		{"GET", "/dlq?topic=payment.commands&topic=order.events", "topic"},
		{"DELETE", "/dlq?group=payment&group=shipping", "group"},
		{"POST", "/dlq/replay?topic=payment.commands&topic=payment.commands", "topic"},
	} {
		code, header, body := f.do(t, tc.method, tc.path, "")
		var p admin.Problem
		if err := json.Unmarshal(body, &p); err != nil || code != 400 || header.Get("Content-Type") != admin.ProblemContentType || p.Field != tc.field {
			t.Errorf("%s %s: got %d %s (%v), want a 400 problem naming %s", tc.method, tc.path, code, body, err, tc.field)
		}
	}
}

// Every admin route refuses a query parameter it does not take, as /dlq
// and the services' routes do: GET /queue/stats?topic=payment.commands
// must not answer with every topic, nor a flag's routes ignore what they
// cannot honour. A refused change changes nothing.
func TestRoutesRefuseQueryParameters(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		method, path, body, field, detail string
	}{
		{"GET", "/queue/stats?topic=payment.commands", "", "topic", `unknown query parameter "topic" (this route takes none)`},
		{"GET", "/faults?name=payment_decline_rate", "", "name", `unknown query parameter "name" (this route takes none)`},
		{"GET", "/faults/payment_decline_rate?verbose=1", "", "verbose", `unknown query parameter "verbose" (this route takes none)`},
		{"PUT", "/faults/payment_decline_rate?value=1", `{"value":"0.5"}`, "value", `unknown query parameter "value" (this route takes none)`},
		{"POST", "/faults/payment_decline_rate?value=1", `{"value":"0.5"}`, "value", `unknown query parameter "value" (this route takes none)`},
		{"DELETE", "/faults/payment_decline_rate?all=1", "", "all", `unknown query parameter "all" (this route takes none)`},
		{"GET", "/healthz?verbose=1", "", "verbose", `unknown query parameter "verbose" (this route takes none)`},
		{"GET", "/readyz?verbose", "", "verbose", `unknown query parameter "verbose" (this route takes none)`},
		{"GET", "/queue/stats?%zz", "", "query", `the query string does not decode: invalid URL escape "%zz"`},
		{"GET", "/metrics?format=json", "", "format", `unknown query parameter "format" (known: name[])`},
		{"GET", "/metrics?name[]=", "", "name[]", "query parameter name[] is empty; leave it out, or give it a value"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			if err := f.reg.Set("payment_decline_rate", "0.25"); err != nil {
				t.Fatal(err)
			}
			code, header, body := f.do(t, tc.method, tc.path, tc.body)
			var p admin.Problem
			if err := json.Unmarshal(body, &p); err != nil || code != 400 || header.Get("Content-Type") != admin.ProblemContentType {
				t.Fatalf("got %d %s (%v), want a 400 problem", code, body, err)
			}
			if p.Field != tc.field || p.Detail != tc.field+": "+tc.detail {
				t.Errorf("got field %q detail %q, want %q %q", p.Field, p.Detail, tc.field, tc.field+": "+tc.detail)
			}
			if got := f.reg.Rate("payment_decline_rate"); got != 0.25 {
				t.Errorf("payment_decline_rate after the refused request: got %v, want 0.25 (unchanged)", got)
			}
		})
	}

	// The routes still answer without a query; and the profiles keep
	// theirs (?seconds=, ?debug=).
	for _, path := range []string{"/queue/stats", "/faults", "/faults/payment_decline_rate", "/healthz", "/readyz", "/metrics",
		"/debug/pprof/goroutine?debug=1", "/debug/pprof/heap?gc=1", "/debug/pprof/cmdline?x=1"} {
		if code, _, body := f.do(t, "GET", path, ""); code != 200 {
			t.Errorf("GET %s: got %d %s, want 200", path, code, body)
		}
	}
}

// GET /metrics takes what Prometheus' handler (promhttp) reads of the
// query, name[] once per metric family to keep (given twice, as a scraper
// sends it), and hands it on; nothing else.
func TestMetricsTakesNameFilters(t *testing.T) {
	srv, err := admin.New(admin.Config{
		Service: "payment",
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, strings.Join(r.URL.Query()["name[]"], ","))
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ query, want string }{
		{"", ""},
		{"?name[]=go_goroutines", "go_goroutines"},
		{"?name%5B%5D=go_goroutines&name%5B%5D=queue_outbox_pending", "go_goroutines,queue_outbox_pending"},
	} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics"+tc.query, nil))
		if rec.Code != 200 || rec.Body.String() != tc.want {
			t.Errorf("GET /metrics%s: got %d %q, want 200 %q", tc.query, rec.Code, rec.Body, tc.want)
		}
	}
}
