// Package domain holds inventory's rules: stock per SKU and reservations
// per order. Reserving is all-or-nothing and never drives stock negative;
// reserving and releasing are idempotent per order; a release that arrives
// before its reservation leaves a tombstone so the late reservation fails.
//
// The package has no infrastructure imports: the application layer loads
// the state, asks the domain what to do and stores the result.
package domain

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Errors of the domain.
var (
	ErrInvalidQuantity = errors.New("invalid quantity")
	ErrUnknownSKU      = errors.New("unknown sku")
	ErrInvalidOrder    = errors.New("invalid order")
)

// QuantityError is a quantity Restock does not take. It matches
// ErrInvalidQuantity.
type QuantityError struct {
	// Problem says what is wrong with the quantity, in words for whoever
	// sent it ("must be at least 1, got 0").
	Problem string
}

// Error reads "invalid quantity: PROBLEM".
func (e *QuantityError) Error() string { return ErrInvalidQuantity.Error() + ": " + e.Problem }

// Unwrap returns ErrInvalidQuantity.
func (e *QuantityError) Unwrap() error { return ErrInvalidQuantity }

// Line is a quantity of one SKU.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Stock is what inventory holds of one SKU. Available + Reserved is the
// physical stock: Initial + Restocked (nothing is shipped from here).
type Stock struct {
	SKU       string `json:"sku"`
	Available int    `json:"available"`
	Reserved  int    `json:"reserved"`
	Initial   int    `json:"initial"`
	Restocked int    `json:"restocked"`
}

// Conserved reports whether the stock still adds up.
func (s Stock) Conserved() bool {
	return s.Available >= 0 && s.Reserved >= 0 && s.Available+s.Reserved == s.Initial+s.Restocked
}

// CheckRestockQuantity returns the *QuantityError of a restock of n
// units that no stock takes, n below 1; nil for any other n, which a
// stock takes unless it would overflow (Restock).
func CheckRestockQuantity(n int) error {
	if n <= 0 {
		return &QuantityError{Problem: fmt.Sprintf("must be at least 1, got %d", n)}
	}
	return nil
}

// Restock adds n units to the available stock. n must be positive
// (CheckRestockQuantity) and leave every count representable: an overflow
// would wrap the stock negative (which the database refuses), so it is an
// invalid quantity. Either error is a *QuantityError.
func (s *Stock) Restock(n int) error {
	if err := CheckRestockQuantity(n); err != nil {
		return err
	}
	// Both sides of the conservation equation grow by n; if either sum
	// fits, so does every field in it (they are not negative).
	if n > math.MaxInt-(s.Available+s.Reserved) || n > math.MaxInt-(s.Initial+s.Restocked) {
		return &QuantityError{Problem: fmt.Sprintf("%d more units would take the stock of %s past %d", n, s.SKU, math.MaxInt)}
	}
	s.Available += n
	s.Restocked += n
	return nil
}

// Status is the state of an order's reservation.
type Status string

// Reservation statuses.
const (
	// StatusReserved: the stock is held for the order.
	StatusReserved Status = "RESERVED"
	// StatusFailed: the reservation was refused; nothing is held.
	StatusFailed Status = "FAILED"
	// StatusReleased: the stock was held, then given back.
	StatusReleased Status = "RELEASED"
	// StatusTombstone: a release arrived before any reservation; a later
	// reservation for the order fails.
	StatusTombstone Status = "TOMBSTONE"
)

// Reservation is what inventory did for one order.
type Reservation struct {
	OrderID string `json:"order_id"`
	Status  Status `json:"status"`
	// Lines are the reserved (or released) lines; empty unless the stock
	// was held at some point.
	Lines []Line `json:"lines"`
	// Reason and Unavailable explain a failed reservation.
	Reason      string `json:"reason,omitempty"`
	Unavailable []Line `json:"unavailable,omitempty"`
}

// Reasons of failed reservations.
const (
	ReasonOutOfStock      = "out of stock"
	ReasonAlreadyReleased = "reservation already released"
	ReasonReleasedFirst   = "order released before its reservation"
)

// ReserveResult is the outcome of Reserve: the reservation that answers the
// request and, when Changed, the state to store.
type ReserveResult struct {
	Reservation Reservation
	// Changed is true when Reservation and Stock must be stored.
	Changed bool
	// Stock holds the updated stock of every SKU the reservation took.
	Stock []Stock
}

// Reserved reports whether the answer is StockReserved.
func (r ReserveResult) Reserved() bool { return r.Reservation.Status == StatusReserved }

// ValidateLines checks an order's lines: at least one, SKUs present and
// distinct, quantities positive.
func ValidateLines(orderID string, lines []Line) error {
	if strings.TrimSpace(orderID) == "" {
		return fmt.Errorf("%w: order id is required", ErrInvalidOrder)
	}
	if len(lines) == 0 {
		return fmt.Errorf("%w: no lines", ErrInvalidOrder)
	}
	seen := map[string]bool{}
	for i, l := range lines {
		if strings.TrimSpace(l.SKU) == "" {
			return fmt.Errorf("%w: line %d has no sku", ErrInvalidOrder, i)
		}
		if seen[l.SKU] {
			return fmt.Errorf("%w: sku %q repeats", ErrInvalidOrder, l.SKU)
		}
		seen[l.SKU] = true
		if l.Quantity <= 0 {
			return fmt.Errorf("%w: line %d (%s): quantity %d", ErrInvalidQuantity, i, l.SKU, l.Quantity)
		}
	}
	return nil
}

// Reserve decides the reservation of lines for an order.
//
// existing is the order's reservation if there is one: a repeated request
// gets the same answer; a request after a release (or a release that came
// first) fails. stock holds the current stock of the SKUs involved (a SKU
// missing from it is unknown); forcedOut lists SKUs to report out of stock
// whatever the stock (fault injection). All-or-nothing: if any line cannot
// be served, nothing is taken and every such line is reported.
func Reserve(orderID string, lines []Line, existing *Reservation, stock map[string]Stock, forcedOut []string) (ReserveResult, error) {
	if err := ValidateLines(orderID, lines); err != nil {
		return ReserveResult{}, err
	}
	if existing != nil {
		switch existing.Status {
		case StatusReserved, StatusFailed:
			return ReserveResult{Reservation: *existing}, nil
		case StatusReleased:
			return ReserveResult{Reservation: Reservation{OrderID: orderID, Status: StatusFailed, Reason: ReasonAlreadyReleased}}, nil
		case StatusTombstone:
			return ReserveResult{Reservation: Reservation{OrderID: orderID, Status: StatusFailed, Reason: ReasonReleasedFirst}}, nil
		}
		return ReserveResult{}, fmt.Errorf("reservation of order %s has unknown status %q", orderID, existing.Status)
	}

	forced := map[string]bool{}
	for _, s := range forcedOut {
		forced[s] = true
	}
	var unavailable []Line
	for _, l := range lines {
		s, ok := stock[l.SKU]
		if !ok || forced[l.SKU] || s.Available < l.Quantity {
			unavailable = append(unavailable, l)
		}
	}
	if len(unavailable) > 0 {
		return ReserveResult{
			Reservation: Reservation{OrderID: orderID, Status: StatusFailed, Reason: ReasonOutOfStock, Unavailable: unavailable},
			Changed:     true,
		}, nil
	}
	changed := make([]Stock, 0, len(lines))
	for _, l := range lines {
		s := stock[l.SKU]
		s.Available -= l.Quantity
		s.Reserved += l.Quantity
		changed = append(changed, s)
	}
	return ReserveResult{
		Reservation: Reservation{OrderID: orderID, Status: StatusReserved, Lines: append([]Line(nil), lines...)},
		Changed:     true,
		Stock:       changed,
	}, nil
}

// ReleaseResult is the outcome of Release.
type ReleaseResult struct {
	Reservation Reservation
	// Changed is true when Reservation and Stock must be stored.
	Changed bool
	Stock   []Stock
	// Released are the lines given back by this or an earlier release
	// (empty when nothing was ever held): the StockReleased answer.
	Released []Line
}

// Release gives back an order's reserved stock. It always answers: a
// repeated release repeats the lines released; releasing a failed
// reservation releases nothing; releasing an order never reserved leaves a
// tombstone (so a late reservation fails) and releases nothing.
func Release(orderID string, existing *Reservation, stock map[string]Stock) (ReleaseResult, error) {
	if strings.TrimSpace(orderID) == "" {
		return ReleaseResult{}, fmt.Errorf("%w: order id is required", ErrInvalidOrder)
	}
	if existing == nil {
		return ReleaseResult{
			Reservation: Reservation{OrderID: orderID, Status: StatusTombstone},
			Changed:     true,
			Released:    []Line{},
		}, nil
	}
	switch existing.Status {
	case StatusReleased:
		return ReleaseResult{Reservation: *existing, Released: existing.Lines}, nil
	case StatusFailed, StatusTombstone:
		return ReleaseResult{Reservation: *existing, Released: []Line{}}, nil
	case StatusReserved:
	default:
		return ReleaseResult{}, fmt.Errorf("reservation of order %s has unknown status %q", orderID, existing.Status)
	}
	changed := make([]Stock, 0, len(existing.Lines))
	for _, l := range existing.Lines {
		s, ok := stock[l.SKU]
		if !ok {
			return ReleaseResult{}, fmt.Errorf("%w %q held by order %s", ErrUnknownSKU, l.SKU, orderID)
		}
		if s.Reserved < l.Quantity {
			return ReleaseResult{}, fmt.Errorf("sku %s: %d reserved, cannot release %d for order %s", l.SKU, s.Reserved, l.Quantity, orderID)
		}
		s.Reserved -= l.Quantity
		s.Available += l.Quantity
		changed = append(changed, s)
	}
	r := *existing
	r.Status = StatusReleased
	return ReleaseResult{Reservation: r, Changed: true, Stock: changed, Released: r.Lines}, nil
}
