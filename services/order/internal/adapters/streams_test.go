package adapters

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

var errRollBack = errors.New("roll back")

// streamStore is a Store on a new database with only what LoadOrder,
// SaveOrder and InTx need.
func streamStore(t *testing.T) *Store {
	t.Helper()
	db, err := OpenDB(context.Background(), filepath.Join(t.TempDir(), "order.db"), DBConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ib, err := inbox.New(context.Background(), db.Writer, inbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &Store{db: db, inbox: ib, streams: newStreamCache(DefaultStreamCacheSize)}
}

func placeTestOrder(t *testing.T, s *Store, id string, now time.Time) {
	t.Helper()
	o, _, err := domain.PlaceOrder(domain.NewOrder{
		ID: id, CustomerID: "c-1", Currency: "EUR",
		Items:           []domain.Item{{SKU: "SKU-1", Quantity: 1, UnitPriceCents: 500}},
		ShippingAddress: domain.Address{Name: "N", Line1: "L", City: "C", Country: "DE"},
	}, domain.Timeouts{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InTx(context.Background(), func(ctx context.Context, tx app.Tx) error {
		return tx.SaveOrder(ctx, o, app.EventMetadata{CorrelationID: id}, now)
	}); err != nil {
		t.Fatal(err)
	}
}

// step loads id, applies decide and saves it, in one transaction that
// commits unless decide or rollBack says otherwise.
func step(s *Store, id string, now time.Time, rollBack bool, decide func(o *domain.Order) error) error {
	return s.InTx(context.Background(), func(ctx context.Context, tx app.Tx) error {
		o, err := tx.LoadOrder(ctx, id)
		if err != nil {
			return err
		}
		if err := decide(o); err != nil {
			return err
		}
		if err := tx.SaveOrder(ctx, o, app.EventMetadata{CorrelationID: id}, now); err != nil {
			return err
		}
		if rollBack {
			return errRollBack
		}
		return nil
	})
}

func loadStatus(t *testing.T, s *Store, id string) (domain.Status, int) {
	t.Helper()
	var status domain.Status
	var version int
	if err := s.InTx(context.Background(), func(ctx context.Context, tx app.Tx) error {
		o, err := tx.LoadOrder(ctx, id)
		if err != nil {
			return err
		}
		status, version = o.Status(), o.Version()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return status, version
}

// The cache serves loads while it is at the stream's version: the events
// in the table are not read again (here: not even readable).
func TestLoadOrderUsesTheCachedStream(t *testing.T) {
	s := streamStore(t)
	now := time.Now()
	placeTestOrder(t, s, "o-1", now)
	if _, err := s.db.Writer.Exec(`UPDATE events SET data = 'not json' WHERE stream_id = 'o-1'`); err != nil {
		t.Fatal(err)
	}
	if err := step(s, "o-1", now, false, func(o *domain.Order) error {
		_, err := o.OnStockReserved(now)
		return err
	}); err != nil {
		t.Fatalf("load and save with the stream cached: %v", err)
	}
	if status, version := loadStatus(t, s, "o-1"); version != 3 || status.IsTerminal() {
		t.Errorf("after StockReserved: got version %d status %s, want version 3 (placed, reserved, payment requested)", version, status)
	}
}

// A stream the cache is not at (an append that bypassed SaveOrder, or a
// transaction that cached its events and rolled back) is read from the
// table.
func TestLoadOrderReadsAStreamTheCacheIsNotAt(t *testing.T) {
	now := time.Now()
	t.Run("appended elsewhere", func(t *testing.T) {
		s := streamStore(t)
		placeTestOrder(t, s, "o-1", now)
		tx, err := s.db.Writer.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (EventStore{}).Append(context.Background(), tx, "o-1", 1,
			[]domain.Event{domain.CancellationRequested{Reason: "customer"}}, app.EventMetadata{}, now); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, version := loadStatus(t, s, "o-1"); version != 2 {
			t.Errorf("version after an append the cache did not see: got %d, want 2", version)
		}
	})
	t.Run("rolled back", func(t *testing.T) {
		s := streamStore(t)
		placeTestOrder(t, s, "o-1", now)
		err := step(s, "o-1", now, true, func(o *domain.Order) error {
			_, err := o.OnStockReservationFailed("none left", now) // ends the order if committed
			return err
		})
		if !errors.Is(err, errRollBack) {
			t.Fatalf("step: got %v, want the roll-back", err)
		}
		status, version := loadStatus(t, s, "o-1")
		if version != 1 || status.IsTerminal() {
			t.Errorf("after a rolled-back decision: got version %d status %s, want version 1, not ended", version, status)
		}
		// And the stream goes on from the committed version.
		if err := step(s, "o-1", now, false, func(o *domain.Order) error {
			_, err := o.OnStockReserved(now)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if _, version := loadStatus(t, s, "o-1"); version != 3 {
			t.Errorf("version after the next decision: got %d, want 3", version)
		}
	})
}

// A transaction whose work is not committed leaves nothing it cached: a
// replica on the same file may commit other events at that version.
func TestStreamCacheForgetsWhatAFailedTransactionCached(t *testing.T) {
	now := time.Now()
	s := streamStore(t)
	placeTestOrder(t, s, "o-1", now)
	err := step(s, "o-1", now, true, func(o *domain.Order) error {
		_, err := o.OnStockReserved(now) // the order goes on: it would stay cached
		return err
	})
	if !errors.Is(err, errRollBack) {
		t.Fatalf("step: got %v, want the roll-back", err)
	}
	if c, ok := s.streams.get("o-1"); ok {
		t.Errorf("cache after a rolled-back decision: got the stream at version %d, want none", c.version)
	}
}

// Orders that ended leave the cache; the cache never holds more than its
// bound.
func TestStreamCacheKeepsOrdersInProgressOnly(t *testing.T) {
	s := streamStore(t)
	now := time.Now()
	placeTestOrder(t, s, "o-1", now)
	if got := s.streams.len(); got != 1 {
		t.Fatalf("cached streams after placing: got %d, want 1", got)
	}
	if err := step(s, "o-1", now, false, func(o *domain.Order) error {
		_, err := o.OnStockReservationFailed("none left", now)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := s.streams.len(); got != 0 {
		t.Errorf("cached streams after the order ended: got %d, want 0", got)
	}
	// Loading an ended order (a late reply) does not cache it either.
	if status, _ := loadStatus(t, s, "o-1"); !status.IsTerminal() {
		t.Fatalf("status: got %s, want an ended order", status)
	}
	if got := s.streams.len(); got != 0 {
		t.Errorf("cached streams after loading an ended order: got %d, want 0", got)
	}

	c := newStreamCache(3)
	for i := range 10 {
		c.put(fmt.Sprintf("o-%d", i), cachedStream{version: 1})
	}
	if got := c.len(); got != 3 {
		t.Errorf("entries of a cache bounded at 3 after 10 puts: got %d, want 3", got)
	}
}
