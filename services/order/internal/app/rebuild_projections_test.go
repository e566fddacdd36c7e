package app_test

import (
	"context"
	"testing"

	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
	"github.com/orderflow/orderflow/services/order/internal/ordertest"
)

// The command rebuilds damaged projections from the event store and counts
// the orders.
func TestRebuildProjections(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	ids := []string{env.Place(), env.Place()}
	if _, err := env.DB.Writer.Exec(`UPDATE order_view SET status = 'BOGUS'; DELETE FROM order_status_counts`); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := env.App.Commands.RebuildProjections.Handle(ctx, app.RebuildProjections{})
	if err != nil || n != len(ids) {
		t.Fatalf("rebuild: got %d, %v, want %d orders", n, err, len(ids))
	}
	for _, id := range ids {
		if got := env.Order(id).Status; got != domain.StatusPending {
			t.Errorf("order %s after the rebuild: got %s, want %s", id, got, domain.StatusPending)
		}
	}
	counts, err := env.App.Queries.StatusCounts.Handle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := counts[domain.StatusPending]; got != int64(len(ids)) {
		t.Errorf("count of %s after the rebuild: got %d, want %d", domain.StatusPending, got, len(ids))
	}
}

// An application needs its projection rebuilder.
func TestNewRebuildProjectionsHandlerNeedsARebuilder(t *testing.T) {
	if _, err := app.NewRebuildProjectionsHandler(nil); err == nil {
		t.Error("NewRebuildProjectionsHandler(nil): got nil error, want a refusal")
	}
}
