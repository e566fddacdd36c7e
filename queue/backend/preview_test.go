package backend

import (
	"bytes"
	"testing"
)

func TestTrimPartialRune(t *testing.T) {
	tests := []struct {
		name     string
		in, want []byte
	}{
		{"whole characters", []byte("abé"), []byte("abé")},
		{"first byte of a two-byte character", []byte("ab\xc3"), []byte("ab")},
		{"two bytes of a three-byte character", []byte("ab\xe2\x82"), []byte("ab")},
		{"binary before the cut", []byte("\xff\xfe\xc3"), []byte("\xff\xfe\xc3")},
		{"a stray continuation byte", []byte("ab\x82"), []byte("ab\x82")},
		{"empty", []byte{}, []byte{}},
	}
	for _, tc := range tests {
		if got := TrimPartialRune(tc.in); !bytes.Equal(got, tc.want) {
			t.Errorf("%s: TrimPartialRune(%q): got %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestCountDeadLetters(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{{0, "0 dead letters"}, {1, "1 dead letter"}, {2, "2 dead letters"}} {
		if got := CountDeadLetters(tc.n); got != tc.want {
			t.Errorf("CountDeadLetters(%d): got %q, want %q", tc.n, got, tc.want)
		}
	}
}
