package adapters_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/services/order/internal/adapters"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// The event store contract, run against every way the store is deployed:
// one writer connection (the service's setting: the Go pool queues
// writers) and a pool of writers waiting in SQLite's busy handler (where
// only the unique constraint stops a race).
func TestEventStoreContract(t *testing.T) {
	for _, conns := range []int{1, 4} {
		t.Run(fmt.Sprintf("writer conns %d", conns), func(t *testing.T) {
			runEventStoreContract(t, func(t *testing.T) *adapters.DB {
				return openTestDB(t, adapters.DBConfig{WriterConns: conns})
			})
		})
	}
}

func openTestDB(t testing.TB, cfg adapters.DBConfig) *adapters.DB {
	t.Helper()
	db, err := adapters.OpenDB(context.Background(), filepath.Join(t.TempDir(), "order.db"), cfg)
	if err != nil {
		t.Fatalf("OpenDB: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// appendTx appends in a transaction of its own, committed on success.
func appendTx(ctx context.Context, db *adapters.DB, stream string, expected int, events ...domain.Event) error {
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	meta := app.EventMetadata{CorrelationID: stream, CausationID: "test", Cause: "test"}
	if _, err := (adapters.EventStore{}).Append(ctx, tx, stream, expected, events, meta, time.Now()); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

func loadEvents(t *testing.T, db *adapters.DB, stream string) ([]app.EventRecord, []domain.Event) {
	t.Helper()
	recs, evs, err := (adapters.EventStore{}).Load(context.Background(), db.Reader, stream)
	if err != nil {
		t.Fatalf("Load(%s): %v", stream, err)
	}
	return recs, evs
}

func placed(id string) domain.OrderPlaced {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	return domain.OrderPlaced{
		OrderID: id, CustomerID: "c-1",
		Items:    []domain.Item{{SKU: "SKU-1", Quantity: 2, UnitPriceCents: 1500}},
		Currency: "EUR", TotalCents: 3000,
		ShippingAddress: domain.Address{Name: "A", Line1: "1 St", City: "Paris", Country: "FR"},
		Timeouts:        domain.DefaultTimeouts(), PlacedAt: at, StockDeadline: at.Add(30 * time.Second),
	}
}

func runEventStoreContract(t *testing.T, open func(t *testing.T) *adapters.DB) {
	ctx := context.Background()

	t.Run("append then load returns the events in order", func(t *testing.T) {
		db := open(t)
		want := []domain.Event{
			placed("o-1"),
			domain.StockReserved{},
			domain.PaymentRequested{AmountCents: 3000, Deadline: time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)},
		}
		if err := appendTx(ctx, db, "o-1", 0, want[0]); err != nil {
			t.Fatalf("append v1: %v", err)
		}
		if err := appendTx(ctx, db, "o-1", 1, want[1:]...); err != nil {
			t.Fatalf("append v2-3: %v", err)
		}
		recs, got := loadEvents(t, db, "o-1")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("events: got %#v, want %#v", got, want)
		}
		for i, r := range recs {
			if r.Version != i+1 || r.StreamID != "o-1" || r.Type != want[i].EventType() {
				t.Errorf("record %d: got version %d stream %q type %q, want %d o-1 %s", i, r.Version, r.StreamID, r.Type, i+1, want[i].EventType())
			}
			if r.Metadata.CorrelationID != "o-1" || r.Metadata.CausationID != "test" {
				t.Errorf("record %d metadata: got %+v, want correlation o-1, causation test", i, r.Metadata)
			}
			if r.RecordedAt.IsZero() {
				t.Errorf("record %d: recorded_at is zero", i)
			}
		}
		if _, err := domain.Rehydrate(got); err != nil {
			t.Errorf("Rehydrate(loaded): %v", err)
		}
	})

	t.Run("unknown stream loads empty", func(t *testing.T) {
		db := open(t)
		recs, evs := loadEvents(t, db, "nope")
		if len(recs) != 0 || len(evs) != 0 {
			t.Errorf("got %d records, %d events, want none", len(recs), len(evs))
		}
	})

	t.Run("stale expected version conflicts and stores nothing", func(t *testing.T) {
		db := open(t)
		if err := appendTx(ctx, db, "o-2", 0, placed("o-2"), domain.StockReserved{}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name     string
			expected int
		}{
			{"behind", 1},
			{"new stream that exists", 0},
			{"ahead", 5},
		}
		for _, tc := range tests {
			err := appendTx(ctx, db, "o-2", tc.expected, domain.StockReleased{})
			var ce *adapters.ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, app.ErrConflict) {
				t.Errorf("%s: got %v, want a *ConflictError matching app.ErrConflict", tc.name, err)
				continue
			}
			if ce.Expected != tc.expected || ce.Actual != 2 {
				t.Errorf("%s: got expected %d actual %d, want %d and 2", tc.name, ce.Expected, ce.Actual, tc.expected)
			}
		}
		if recs, _ := loadEvents(t, db, "o-2"); len(recs) != 2 {
			t.Errorf("stream length after conflicts: got %d, want 2", len(recs))
		}
	})

	t.Run("streams are independent", func(t *testing.T) {
		db := open(t)
		for _, id := range []string{"a", "b"} {
			if err := appendTx(ctx, db, id, 0, placed(id)); err != nil {
				t.Fatalf("append %s: %v", id, err)
			}
		}
		for _, id := range []string{"a", "b"} {
			if recs, _ := loadEvents(t, db, id); len(recs) != 1 {
				t.Errorf("stream %s: got %d events, want 1", id, len(recs))
			}
		}
	})

	t.Run("unknown stored type is invalid history", func(t *testing.T) {
		db := open(t)
		if _, err := db.Writer.Exec(`INSERT INTO events (stream_id, version, type, data, metadata, recorded_at)
			VALUES ('x', 1, 'Bogus', '{}', '{}', 0)`); err != nil {
			t.Fatal(err)
		}
		_, _, err := (adapters.EventStore{}).Load(ctx, db.Reader, "x")
		if !errors.Is(err, domain.ErrInvalidHistory) {
			t.Errorf("got %v, want ErrInvalidHistory", err)
		}
	})

	t.Run("20 writers race for each version: exactly one wins", func(t *testing.T) {
		db := open(t)
		if err := appendTx(ctx, db, "race", 0, placed("race")); err != nil {
			t.Fatal(err)
		}
		const writers, rounds = 20, 5
		for round := range rounds {
			expected := 1 + round
			var (
				wg             sync.WaitGroup
				mu             sync.Mutex
				wins, conflict int
				others         []error
			)
			start := make(chan struct{})
			for range writers {
				wg.Go(func() {
					<-start
					err := appendTx(ctx, db, "race", expected, domain.StockReleased{})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						wins++
					case errors.Is(err, app.ErrConflict):
						conflict++
					default:
						others = append(others, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if wins != 1 || conflict != writers-1 || len(others) > 0 {
				t.Fatalf("round %d: got %d wins, %d conflicts, other errors %v; want 1 and %d", round, wins, conflict, others, writers-1)
			}
		}
		recs, _ := loadEvents(t, db, "race")
		if len(recs) != 1+rounds {
			t.Fatalf("stream length: got %d, want %d", len(recs), 1+rounds)
		}
		for i, r := range recs {
			if r.Version != i+1 {
				t.Errorf("record %d: got version %d, want %d", i, r.Version, i+1)
			}
		}
	})
}
