package app_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/pkg/idempotency"
	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/services/inventory/internal/adapters"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
	"github.com/orderflow/orderflow/services/inventory/internal/domain"
)

// testKeyRetention is the restock key retention of newApp's application:
// not the service's default, so that a test of the retention shows the
// configured one is kept.
const testKeyRetention = 2 * time.Hour

// newApp returns inventory's application on a fresh database, with the
// database; beforeCommit is the unit of work's BeforeCommit.
func newApp(t *testing.T, beforeCommit func(context.Context)) (app.Application, *sql.DB) {
	t.Helper()
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
	uow, err := adapters.NewUnitOfWork(servicedb.UnitOfWorkConfig{
		DB: db, Inbox: ib, Outbox: ob, ConsumerGroup: "inventory", BeforeCommit: beforeCommit,
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(uow, adapters.NewReadModel(db), app.Config{RestockKeyRetention: testKeyRetention})
	if err != nil {
		t.Fatal(err)
	}
	return a, db
}

// The crash_mid_handler fault point (BeforeCommit) is reached by the
// message handlers only: a restock, keyed or not, is a request with no
// redelivery to recover from a crash (the console keys every restock, and
// its retry with the same key would crash inventory again).
func TestOnlyMessageHandlersReachTheFaultPoint(t *testing.T) {
	ctx := context.Background()
	calls := 0
	a, _ := newApp(t, func(context.Context) { calls++ })
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

// An Idempotency-Key names one restock: sent again with it, the restock
// is a replay that adds nothing; another SKU or quantity sent with it is
// idempotency.ErrKeyReused and adds nothing, as POST /orders refuses a key
// reused with another body. A restock that is not valid (a quantity below
// 1, an unknown SKU) is refused as such whatever its key, which is then
// neither looked up nor taken, as POST /orders refuses an invalid order.
// A key is remembered for the configured retention, then forgotten: the
// key is a new restock's.
func TestRestockIdempotencyKeyNamesOneRestock(t *testing.T) {
	ctx := context.Background()
	a, db := newApp(t, nil)
	steps := []struct {
		name          string
		cmd           app.Restock
		wantErr       error
		wantReplayed  bool
		wantRestocked map[string]int
	}{
		{"first", app.Restock{SKU: "SKU-1", Quantity: 5, IdempotencyKey: "k-1"}, nil, false, map[string]int{"SKU-1": 5}},
		{"the same again", app.Restock{SKU: "SKU-1", Quantity: 5, IdempotencyKey: "k-1"}, nil, true, map[string]int{"SKU-1": 5}},
		{"another quantity", app.Restock{SKU: "SKU-1", Quantity: 7, IdempotencyKey: "k-1"}, idempotency.ErrKeyReused, false, map[string]int{"SKU-1": 5}},
		{"another SKU", app.Restock{SKU: "SKU-2", Quantity: 5, IdempotencyKey: "k-1"}, idempotency.ErrKeyReused, false, map[string]int{"SKU-1": 5, "SKU-2": 0}},
		{"an unknown SKU, with a used key", app.Restock{SKU: "NOPE", Quantity: 5, IdempotencyKey: "k-1"}, app.ErrUnknownSKU, false, map[string]int{"SKU-1": 5}},
		{"an invalid quantity, with a used key", app.Restock{SKU: "SKU-1", Quantity: 0, IdempotencyKey: "k-1"}, domain.ErrInvalidQuantity, false, map[string]int{"SKU-1": 5}},
		{"an invalid quantity of an unknown SKU, with a used key", app.Restock{SKU: "NOPE", Quantity: -1, IdempotencyKey: "k-1"}, domain.ErrInvalidQuantity, false, map[string]int{"SKU-1": 5}},
		{"the used key still replays its restock", app.Restock{SKU: "SKU-1", Quantity: 5, IdempotencyKey: "k-1"}, nil, true, map[string]int{"SKU-1": 5}},
		{"a refused restock records no key", app.Restock{SKU: "SKU-2", Quantity: 0, IdempotencyKey: "k-2"}, domain.ErrInvalidQuantity, false, map[string]int{"SKU-2": 0}},
		{"so the key is free for another", app.Restock{SKU: "SKU-2", Quantity: 2, IdempotencyKey: "k-2"}, nil, false, map[string]int{"SKU-2": 2}},
		{"no key: every one is applied", app.Restock{SKU: "SKU-1", Quantity: 5}, nil, false, map[string]int{"SKU-1": 10}},
		{"no key, again", app.Restock{SKU: "SKU-1", Quantity: 5}, nil, false, map[string]int{"SKU-1": 15}},
	}
	for _, st := range steps {
		res, err := a.Commands.Restock.Handle(ctx, st.cmd)
		if !errors.Is(err, st.wantErr) || (err == nil) != (st.wantErr == nil) {
			t.Fatalf("%s: got error %v, want %v", st.name, err, st.wantErr)
		}
		if res.Replayed != st.wantReplayed {
			t.Errorf("%s: got replayed %v, want %v", st.name, res.Replayed, st.wantReplayed)
		}
		if err == nil && (res.Stock.SKU != st.cmd.SKU || res.Stock.Restocked != st.wantRestocked[st.cmd.SKU]) {
			t.Errorf("%s: got stock %+v, want %s restocked %d", st.name, res.Stock, st.cmd.SKU, st.wantRestocked[st.cmd.SKU])
		}
		for sku, want := range st.wantRestocked {
			if got := restocked(t, a, sku); got != want {
				t.Errorf("%s: got %s restocked %d, want %d", st.name, sku, got, want)
			}
		}
	}

	// A key within the retention is still remembered.
	if _, err := db.ExecContext(ctx, `UPDATE restock_keys SET created_at = ?`,
		time.Now().Add(-testKeyRetention+time.Minute).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if res, err := a.Commands.Restock.Handle(ctx, app.Restock{SKU: "SKU-1", Quantity: 5, IdempotencyKey: "k-1"}); err != nil || !res.Replayed {
		t.Fatalf("k-1 a minute before the end of its retention: got %+v, %v, want a replay", res, err)
	}
	// A key older than the retention is forgotten: sent again, with
	// another quantity even, it is a new restock.
	if _, err := db.ExecContext(ctx, `UPDATE restock_keys SET created_at = ?`,
		time.Now().Add(-testKeyRetention-time.Minute).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	res, err := a.Commands.Restock.Handle(ctx, app.Restock{SKU: "SKU-1", Quantity: 7, IdempotencyKey: "k-1"})
	if err != nil || res.Replayed || res.Stock.Restocked != 22 {
		t.Errorf("k-1 after the retention: got %+v, %v, want SKU-1 restocked by 7 to 22, not replayed", res, err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM restock_keys`).Scan(&n); err != nil || n != 1 {
		t.Errorf("restock keys kept: got %d (%v), want 1 (the expired k-2 purged, k-1 recorded anew)", n, err)
	}
}

// restocked returns how many units of sku were restocked so far.
func restocked(t *testing.T, a app.Application, sku string) int {
	t.Helper()
	stock, err := a.Queries.Stock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stock {
		if s.SKU == sku {
			return s.Restocked
		}
	}
	return 0
}
