package jsonbody

import (
	"reflect"
	"testing"
)

// request is a struct with a tagged field, an untagged one and one the
// json tag leaves out.
type request struct {
	CustomerID string `json:"customer_id"`
	Address    string `json:"shipping_address"`
	Note       string
	Ignored    string `json:"-"`
}

func TestInvalidUTF8At(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"Zoë", 4},
		{"a\xffb", 1},
		{"ab\xc3", 2},              // truncated two-byte sequence
		{"\xed\xa0\x80", 0},        // a surrogate half spelt in UTF-8
		{"ok \xf0\x9f\x98\x80", 7}, // a four-byte sequence, whole
	}
	for _, tc := range tests {
		if got := invalidUTF8At([]byte(tc.in)); got != tc.want {
			t.Errorf("invalidUTF8At(%q): got %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestFieldFold(t *testing.T) {
	typ := reflect.TypeFor[request]()
	tests := []struct {
		key, wantName, wantGo string
		wantOK                bool
	}{
		{"customer_id", "customer_id", "CustomerID", true},
		{"CUSTOMER_ID", "customer_id", "CustomerID", true},
		{"shipping_address", "shipping_address", "Address", true},
		{"Address", "", "", false}, // the json name, not the Go one, when tagged
		{"Ignored", "", "", false}, // json:"-"
		{"coupon", "", "", false},
		{"Note", "Note", "Note", true}, // untagged: the Go name
		{"note", "Note", "Note", true},
	}
	for _, tc := range tests {
		f, name, ok := fieldFold(typ, tc.key)
		if ok != tc.wantOK || name != tc.wantName || f.Name != tc.wantGo {
			t.Errorf("fieldFold(%q): got %q %q %v, want %q %q %v", tc.key, f.Name, name, ok, tc.wantGo, tc.wantName, tc.wantOK)
		}
	}
}
