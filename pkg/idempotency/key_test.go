package idempotency_test

import (
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
