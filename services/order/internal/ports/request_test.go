package ports

import "testing"

func TestParseJSONInteger(t *testing.T) {
	tests := []struct {
		s           string
		v           int64
		isInt, fits bool
	}{
		{"0", 0, true, true},
		{"-0.0", 0, true, true},
		{"0e999999999999", 0, true, true},
		{"1", 1, true, true},
		{"1.0", 1, true, true},
		{"1e2", 100, true, true},
		{"1E+2", 100, true, true},
		{"2.50e1", 25, true, true},
		{"10e-1", 1, true, true},
		{"-12.000", -12, true, true},
		{"1.5", 0, false, false},
		{"1e-1", 0, false, false},
		{"1e-999999999999", 0, false, false},
		{"9223372036854775807", 9223372036854775807, true, true},
		{"-9223372036854775808", -9223372036854775808, true, true},
		{"9223372036854775808", 0, true, false},
		{"92233720368547758070e-1", 9223372036854775807, true, true},
		{"1e19", 0, true, false},
		{"1e400", 0, true, false},
		{"-1e999999999999", 0, true, false},
		{"0.000000000000000000001e21", 1, true, true},
	}
	for _, tc := range tests {
		v, isInt, fits := parseJSONInteger(tc.s)
		if v != tc.v || isInt != tc.isInt || fits != tc.fits {
			t.Errorf("parseJSONInteger(%q): got %d, %v, %v; want %d, %v, %v", tc.s, v, isInt, fits, tc.v, tc.isInt, tc.fits)
		}
	}
}
