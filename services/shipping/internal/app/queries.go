package app

import (
	"context"

	"github.com/orderflow/orderflow/services/shipping/internal/domain"
)

// Queries are shipping's read-only questions.
type Queries struct {
	rm      ReadModel
	carrier Carrier
}

// CarrierRecords lists the carrier's books, newest first.
func (q Queries) CarrierRecords(ctx context.Context, f Filter) ([]CarrierRecord, error) {
	return q.carrier.Records(ctx, f)
}

// Shipments lists shipments, newest first.
func (q Queries) Shipments(ctx context.Context, f Filter) ([]domain.Shipment, error) {
	return q.rm.Shipments(ctx, f)
}

// State is shipping's state for invariant checks.
type State struct {
	// Shipments counts the orders by shipment status.
	Shipments map[domain.Status]int `json:"shipments"`
}

// State returns the shipment counts by status.
func (q Queries) State(ctx context.Context) (State, error) {
	c, err := q.rm.Counts(ctx)
	if err != nil {
		return State{}, err
	}
	return State{Shipments: c}, nil
}
