package plaintext_test

import (
	"testing"

	"github.com/orderflow/orderflow/pkg/plaintext"
)

func TestUnsafe(t *testing.T) {
	tests := []struct {
		name string
		r    rune
		want bool
	}{
		{"letter", 'a', false},
		{"space", ' ', false},
		{"accented", 'é', false},
		{"zero-width joiner (emoji sequences)", '\u200d', false},
		{"zero-width non-joiner (Persian)", '\u200c', false},
		{"NUL", 0, true},
		{"escape", 0x1b, true},
		{"carriage return", '\r', true},
		{"C1 control", '\u009b', true},
		{"right-to-left override", '\u202e', true},
		{"left-to-right embedding", '\u202a', true},
		{"first strong isolate", '\u2068', true},
		{"pop directional isolate", '\u2069', true},
		{"right-to-left mark", '\u200f', true},
		{"Arabic letter mark", '\u061c', true},
		{"after the isolates", '\u206a', false},
	}
	for _, tc := range tests {
		if got := plaintext.Unsafe(tc.r); got != tc.want {
			t.Errorf("%s (%U): got %v, want %v", tc.name, tc.r, got, tc.want)
		}
	}
}
