package jsonbody

import "testing"

func TestIntegerDecimal(t *testing.T) {
	tests := []struct {
		lit   string
		text  string
		isInt bool
	}{
		{"0", "0", true},
		{"-0.0", "0", true},
		{"0e999999999999", "0", true},
		{"1", "1", true},
		{"1.0", "1", true},
		{"1e2", "100", true},
		{"1E+2", "100", true},
		{"2.50e1", "25", true},
		{"10e-1", "1", true},
		{"-12.000", "-12", true},
		{"1.5", "", false},
		{"1e-1", "", false},
		{"1e-999999999999", "", false},
		{"9223372036854775807", "9223372036854775807", true},
		{"-9223372036854775808", "-9223372036854775808", true},
		{"9223372036854775808", "9223372036854775808", true},
		{"92233720368547758070e-1", "9223372036854775807", true},
		{"18446744073709551615", "18446744073709551615", true},
		{"1e19", "10000000000000000000", true},
		{"1e20", "", true},
		{"1e400", "", true},
		{"-1e999999999999", "", true},
		{"0.000000000000000000001e21", "1", true},
	}
	for _, tc := range tests {
		text, isInt := integerDecimal(tc.lit)
		if text != tc.text || isInt != tc.isInt {
			t.Errorf("integerDecimal(%q): got %q, %v; want %q, %v", tc.lit, text, isInt, tc.text, tc.isInt)
		}
	}
}
