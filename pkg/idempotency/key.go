// Package idempotency holds the one rule every orderflow API applies to an
// Idempotency-Key, and its one refusal of a key reused: the order API
// (placing an order), the inventory admin API (a restock) and the
// console, which makes keys, sends them on and reads the refusal.
//
// Keys are compared byte for byte and stored as sent, so the rule keeps
// them to what travels unchanged in an HTTP header and a log line.
package idempotency

import (
	"errors"
	"fmt"
	"net/http"
)

// Header names every API uses.
const (
	// Header is the request header that makes a POST happen once however
	// often it is sent.
	Header = "Idempotency-Key"
	// HeaderReplayed is set to "true" on the answer to a retry: the
	// answer of the request the key first came with, nothing done again.
	HeaderReplayed = "Idempotent-Replayed"
)

// ErrKeyReused is the error of a request whose Idempotency-Key was sent
// before with another request (another order, another restock): a key
// names one request. The services' application layers return it wrapped
// with what the key was used for; their APIs answer it with a 422 of
// problem type ProblemTypeKeyReused naming the header.
var ErrKeyReused = errors.New("idempotency key reused with a different request")

// ProblemTypeKeyReused is the RFC 9457 problem type of ErrKeyReused on
// every API, so that a client tells it apart from the other 422s about
// the header (a key sent empty or twice).
const ProblemTypeKeyReused = "urn:orderflow:problem:idempotency-key-reused"

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

// KeyError is a request's Idempotency-Key header that is well-formed HTTP
// but not a key: sent empty, more than once, or with characters ValidKey
// refuses. Each API answers it with its status for a bad field, naming
// Header and quoting Problem.
type KeyError struct {
	// Problem says what is wrong, as the end of a sentence that starts
	// with the header's name: "was sent more than once; send one key".
	Problem string
}

func (e *KeyError) Error() string { return Header + " " + e.Problem }

// KeyFrom returns the Idempotency-Key of a request's header, "" when it
// sent none. A header sent empty or more than once is a *KeyError rather
// than no key: its sender means its retries to happen once, and they would
// each happen.
func KeyFrom(h http.Header) (string, error) {
	keys := h.Values(Header)
	switch {
	case len(keys) == 0:
		return "", nil
	case len(keys) > 1:
		return "", &KeyError{Problem: "was sent more than once; send one key"}
	case keys[0] == "":
		return "", &KeyError{Problem: fmt.Sprintf("is empty; send a key of 1 to %d printable ASCII characters, or no header", MaxKeyLength)}
	case !ValidKey(keys[0]):
		return "", &KeyError{Problem: fmt.Sprintf("must be 1 to %d printable ASCII characters, no space first or last", MaxKeyLength)}
	}
	return keys[0], nil
}
