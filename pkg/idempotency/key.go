// Package idempotency holds the one rule every orderflow API applies to an
// Idempotency-Key: the order API (placing an order), the inventory admin
// API (a restock) and the console, which makes keys and sends them on.
//
// Keys are compared byte for byte and stored as sent, so the rule keeps
// them to what travels unchanged in an HTTP header and a log line.
package idempotency

// MaxKeyLength is the longest key accepted, in bytes.
const MaxKeyLength = 255

// ValidKey reports whether k is a key the services accept: 1 to
// MaxKeyLength printable ASCII characters (no control characters, nothing
// beyond ASCII), spaces only inside it: HTTP drops the spaces around a
// header's value, so " k" would arrive as "k".
func ValidKey(k string) bool {
	if k == "" || len(k) > MaxKeyLength || k[0] == ' ' || k[len(k)-1] == ' ' {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}
