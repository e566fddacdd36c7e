package admin_test

import (
	"encoding/json"
	"errors"
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
