package domain

import (
	"errors"
	"strings"
)

// Sentinel errors of the order domain. The HTTP layer maps them to statuses
// in one place with errors.Is; every error a method here returns wraps one of
// them, or is a programming error (a 500).
var (
	// ErrInvalidOrder: the order to place breaks an invariant. The error is a
	// *ValidationError naming each field at fault.
	ErrInvalidOrder = errors.New("invalid order")
	// ErrNotCancellable: the order is COMPLETED or REJECTED.
	ErrNotCancellable = errors.New("order cannot be cancelled")
	// ErrInvalidReply: a service reply lacks what the saga needs (an empty
	// payment id…). The message is unusable; dead-letter it.
	ErrInvalidReply = errors.New("invalid reply")
	// ErrInvalidHistory: Rehydrate was given a stream that no sequence of
	// decisions can produce (empty, not starting with OrderPlaced, an unknown
	// event type…).
	ErrInvalidHistory = errors.New("invalid order history")
)

// FieldError is one problem of one field of an order to place. Field is named
// as on the wire, e.g. "items[1].quantity" or "shipping_address.country".
type FieldError struct {
	Field   string
	Problem string
}

// ValidationError lists every problem found in an order to place. It matches
// ErrInvalidOrder with errors.Is; use errors.As to reach the fields.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalidOrder.Error())
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field + " " + f.Problem)
	}
	return b.String()
}

// Is reports whether target is ErrInvalidOrder.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidOrder }
