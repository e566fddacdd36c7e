package jsonbody

import (
	"strconv"
	"strings"
)

// maxIntegerDigits is the number of digits of the greatest 64-bit integer
// (18446744073709551615): an integer with more fits no Go integer type.
const maxIntegerDigits = 20

// integerDecimal reads lit, a number in JSON's syntax, as JSON Schema
// 2020-12 reads an integer: any number without a fractional part, however
// written (2, 2.0, 0.2e1, 200e-2, -0.0). It returns whether lit is one
// and, if so, the integer in decimal ("2", "0"), or "" when it has more
// than maxIntegerDigits digits (1e400). Exponents of any size are read
// without spelling out the number.
func integerDecimal(lit string) (text string, isInt bool) {
	neg := strings.HasPrefix(lit, "-")
	s := strings.TrimPrefix(lit, "-")
	mantissa, exp := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mantissa, exp = s[:i], s[i+1:]
	}
	whole, frac, _ := strings.Cut(mantissa, ".")
	digits := strings.TrimLeft(whole+frac, "0")
	if digits == "" {
		return "0", true // zero, however written
	}
	// The value is digits × 10^shift, digits without trailing zeros.
	trimmed := strings.TrimRight(digits, "0")
	shift := int64(len(digits)-len(trimmed)) - int64(len(frac))
	digits = trimmed
	expNeg := strings.HasPrefix(exp, "-")
	exp = strings.TrimLeft(strings.TrimLeft(exp, "+-"), "0")
	if len(exp) > 9 { // beyond any shift the digits of a body could undo
		return "", !expNeg
	}
	if exp != "" {
		e, _ := strconv.ParseInt(exp, 10, 64) // at most 9 digits
		if expNeg {
			e = -e
		}
		shift += e
	}
	if shift < 0 {
		return "", false
	}
	if int64(len(digits))+shift > maxIntegerDigits {
		return "", true
	}
	text = digits + strings.Repeat("0", int(shift))
	if neg {
		text = "-" + text
	}
	return text, true
}
