package app

import (
	"context"
	"errors"

	"github.com/orderflow/orderflow/services/inventory/internal/domain"
)

// ErrNotFound is returned by queries for something that does not exist.
var ErrNotFound = errors.New("not found")

// Queries are inventory's read-only questions.
type Queries struct {
	rm ReadModel
}

// NewQueries returns the queries over rm.
func NewQueries(rm ReadModel) (Queries, error) {
	if rm == nil {
		return Queries{}, errors.New("queries: read model is nil")
	}
	return Queries{rm: rm}, nil
}

// Stock lists the stock of every SKU, sorted by SKU.
func (q Queries) Stock(ctx context.Context) ([]domain.Stock, error) {
	return q.rm.ListStock(ctx)
}

// Reservation returns an order's reservation or ErrNotFound.
func (q Queries) Reservation(ctx context.Context, orderID string) (domain.Reservation, error) {
	r, err := q.rm.Reservation(ctx, orderID)
	if err != nil {
		return domain.Reservation{}, err
	}
	if r == nil {
		return domain.Reservation{}, ErrNotFound
	}
	return *r, nil
}

// State is inventory's state for invariant checks.
type State struct {
	Stock        []domain.Stock        `json:"stock"`
	Reservations map[domain.Status]int `json:"reservations"`
	// Conserved is true when, for every SKU, nothing is negative and
	// available + reserved = initial + restocked.
	Conserved bool `json:"conserved"`
}

// State returns the stock and the reservation counts by status.
func (q Queries) State(ctx context.Context) (State, error) {
	stock, err := q.rm.ListStock(ctx)
	if err != nil {
		return State{}, err
	}
	counts, err := q.rm.ReservationCounts(ctx)
	if err != nil {
		return State{}, err
	}
	st := State{Stock: stock, Reservations: counts, Conserved: true}
	for _, s := range stock {
		if !s.Conserved() {
			st.Conserved = false
		}
	}
	return st, nil
}
