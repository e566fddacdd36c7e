package app

import (
	"context"
	"errors"
)

// RebuildProjections is an operator's request to recompute the order
// list, the status counts and the deadline index from the event store
// (after a change of the projection code, or a repair).
type RebuildProjections struct{}

// ProjectionRebuilder recomputes the projections from the event store.
type ProjectionRebuilder interface {
	// RebuildProjections replaces every projection by what the event
	// store's streams give, in one transaction, and returns the number of
	// orders.
	RebuildProjections(ctx context.Context) (orders int, err error)
}

// RebuildProjectionsHandler rebuilds the projections. Live projections
// are written in the transaction of each decision, so a running service
// needs it only after a change of the projection code or a repair; the
// rebuild holds the database's one write transaction while it runs, so
// commands wait for it.
type RebuildProjectionsHandler struct {
	projections ProjectionRebuilder
}

// NewRebuildProjectionsHandler returns a RebuildProjectionsHandler.
func NewRebuildProjectionsHandler(projections ProjectionRebuilder) (RebuildProjectionsHandler, error) {
	if projections == nil {
		return RebuildProjectionsHandler{}, errors.New("new rebuild projections handler: projection rebuilder is nil")
	}
	return RebuildProjectionsHandler{projections: projections}, nil
}

// Handle rebuilds the projections and returns the number of orders.
func (h RebuildProjectionsHandler) Handle(ctx context.Context, _ RebuildProjections) (int, error) {
	if h.projections == nil {
		return 0, errors.New("rebuild projections: handler not initialised")
	}
	return h.projections.RebuildProjections(ctx)
}
