package app_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/services/inventory/internal/adapters"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
	"github.com/orderflow/orderflow/services/inventory/internal/domain"
)

// The crash_mid_handler fault point (BeforeCommit) is reached by the
// message handlers only: a restock, keyed or not, is a request with no
// redelivery to recover from a crash (the console keys every restock, and
// its retry with the same key would crash inventory again).
func TestOnlyMessageHandlersReachTheFaultPoint(t *testing.T) {
	ctx := context.Background()
	db, err := servicedb.Open(ctx, filepath.Join(t.TempDir(), "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := adapters.Migrate(ctx, db, catalog.Default()); err != nil {
		t.Fatal(err)
	}
	ib, err := inbox.New(ctx, db, inbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(ctx, db, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	uow, err := adapters.NewUnitOfWork(servicedb.UnitOfWorkConfig{
		DB: db, Inbox: ib, Outbox: ob, ConsumerGroup: "inventory", BeforeCommit: func() { calls++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(uow, adapters.NewReadModel(db), nil)
	if err != nil {
		t.Fatal(err)
	}
	restock := func(key string) func() error {
		return func() error {
			_, err := a.Commands.Restock.Handle(ctx, app.Restock{SKU: "SKU-1", Quantity: 5, IdempotencyKey: key})
			return err
		}
	}
	tests := []struct {
		name      string
		run       func() error
		wantCalls int
	}{
		{"restock with an Idempotency-Key", restock("k-1"), 0},
		{"the same restock again (replayed)", restock("k-1"), 0},
		{"restock without a key", restock(""), 0},
		{"ReserveStock, a message handler", func() error {
			_, _, err := a.Commands.ReserveStock.Handle(ctx, app.ReserveStock{
				MessageID: "m-1", OrderID: "o-1", Lines: []domain.Line{{SKU: "SKU-1", Quantity: 1}},
			})
			return err
		}, 1},
		{"ReleaseStock, a message handler", func() error {
			_, _, err := a.Commands.ReleaseStock.Handle(ctx, app.ReleaseStock{MessageID: "m-2", OrderID: "o-1"})
			return err
		}, 1},
	}
	for _, tc := range tests {
		calls = 0
		if err := tc.run(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if calls != tc.wantCalls {
			t.Errorf("%s: got %d BeforeCommit calls, want %d", tc.name, calls, tc.wantCalls)
		}
	}
}
