package idempotency_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/pkg/idempotency"
)

func TestValidKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		want bool
	}{
		{"empty", "", false},
		{"one character", "k", true},
		{"uuid", "4f1c2e9a-0d7b-4a51-9a8e-3c1f2b7d6e50", true},
		{"space inside", "retry 1", true},
		{"leading space (HTTP drops it)", " k", false},
		{"trailing space (HTTP drops it)", "k ", false},
		{"only spaces", "   ", false},
		{"longest", strings.Repeat("k", idempotency.MaxKeyLength), true},
		{"one byte too long", strings.Repeat("k", idempotency.MaxKeyLength+1), false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"DEL", "a\x7fb", false},
		{"non-ASCII", "clé", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := idempotency.ValidKey(tt.key); got != tt.want {
				t.Errorf("ValidKey(%q) = %v, want %v", tt.key, got, tt.want)
			}
		})
	}
}

func TestKeyFrom(t *testing.T) {
	tests := []struct {
		name        string
		values      []string // the header's values, nil: no header
		wantKey     string
		wantProblem string // "" when the header is a key or absent
	}{
		{name: "no header", values: nil, wantKey: ""},
		{name: "one key", values: []string{"k-1"}, wantKey: "k-1"},
		{name: "sent twice", values: []string{"a", "a"}, wantProblem: "was sent more than once; send one key"},
		{name: "empty", values: []string{""}, wantProblem: "is empty; send a key of 1 to 255 printable ASCII characters, or no header"},
		{name: "not printable ASCII", values: []string{"clé"}, wantProblem: "must be 1 to 255 printable ASCII characters, no space first or last"},
		{name: "too long", values: []string{strings.Repeat("k", idempotency.MaxKeyLength+1)}, wantProblem: "must be 1 to 255 printable ASCII characters, no space first or last"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.values != nil {
				h[idempotency.Header] = tt.values
			}
			key, err := idempotency.KeyFrom(h)
			var keyErr *idempotency.KeyError
			switch {
			case tt.wantProblem == "" && err != nil:
				t.Fatalf("KeyFrom(%q) error = %v, want key %q", tt.values, err, tt.wantKey)
			case tt.wantProblem == "" && key != tt.wantKey:
				t.Errorf("KeyFrom(%q) = %q, want %q", tt.values, key, tt.wantKey)
			case tt.wantProblem != "" && !errors.As(err, &keyErr):
				t.Fatalf("KeyFrom(%q) = %q, %v; want a *KeyError", tt.values, key, err)
			case tt.wantProblem != "" && keyErr.Problem != tt.wantProblem:
				t.Errorf("KeyFrom(%q) problem = %q, want %q", tt.values, keyErr.Problem, tt.wantProblem)
			case tt.wantProblem != "" && key != "":
				t.Errorf("KeyFrom(%q) key = %q with an error, want \"\"", tt.values, key)
			}
		})
	}
}
