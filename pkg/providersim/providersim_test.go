package providersim_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/orderflow/orderflow/pkg/providersim"
	"github.com/orderflow/orderflow/pkg/servicedb"
)

func openBooks(t *testing.T, providers ...string) []*providersim.Books {
	t.Helper()
	ctx := context.Background()
	db, err := servicedb.Open(ctx, filepath.Join(t.TempDir(), "service.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := providersim.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	var books []*providersim.Books
	for _, p := range providers {
		b, err := providersim.New(db, p)
		if err != nil {
			t.Fatal(err)
		}
		books = append(books, b)
	}
	return books
}

func accept(ref string, calls *atomic.Int32) func() providersim.Answer {
	return func() providersim.Answer {
		calls.Add(1)
		return providersim.Answer{Outcome: providersim.OutcomeAccepted, Reference: ref, Details: `{"n":1}`}
	}
}

func TestARepeatedRequestReturnsTheFirstAnswerWithoutANewEffect(t *testing.T) {
	ctx := context.Background()
	b := openBooks(t, "gateway")[0]
	var calls atomic.Int32
	first, err := b.Request(ctx, "order-1", accept("pay_1", &calls))
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Request(ctx, "order-1", accept("pay_2", &calls))
	if err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("decide calls: got %d, want 1", got)
	}
	if first.Reference != "pay_1" || again.Reference != "pay_1" {
		t.Errorf("references: got %q then %q, want pay_1 both times", first.Reference, again.Reference)
	}
	if again.Requests != 2 || again.Replays() != 1 {
		t.Errorf("requests, replays: got %d, %d, want 2, 1", again.Requests, again.Replays())
	}
	listed, err := b.List(ctx, providersim.Filter{Key: "order-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Requests != 2 || listed[0].Details != `{"n":1}` || listed[0].Outcome != providersim.OutcomeAccepted {
		t.Errorf("books: got %+v, want one accepted record with 2 requests and its details", listed)
	}
}

func TestConcurrentRequestsForOneKeyTakeEffectOnce(t *testing.T) {
	ctx := context.Background()
	b := openBooks(t, "gateway")[0]
	var calls atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := b.Request(ctx, "order-1", accept("pay_1", &calls)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("decide calls: got %d, want 1", got)
	}
	recs, err := b.List(ctx, providersim.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Requests != 8 {
		t.Errorf("books: got %+v, want one record with 8 requests", recs)
	}
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	refuse := func() providersim.Answer {
		return providersim.Answer{Outcome: providersim.OutcomeRefused, Reason: "card declined"}
	}
	tests := []struct {
		name          string
		before        func(b *providersim.Books) error
		cancels       int
		wantOutcome   providersim.Outcome
		wantCancelled bool
		reference     string // what the cancellations name
	}{
		{"an accepted request is cancelled", func(b *providersim.Books) error {
			_, err := b.Request(ctx, "k", accept("ref", new(atomic.Int32)))
			return err
		}, 1, providersim.OutcomeAccepted, true, ""},
		{"a second cancel changes nothing", func(b *providersim.Books) error {
			_, err := b.Request(ctx, "k", accept("ref", new(atomic.Int32)))
			return err
		}, 2, providersim.OutcomeAccepted, true, ""},
		{"a refused request stays refused", func(b *providersim.Books) error {
			_, err := b.Request(ctx, "k", refuse)
			return err
		}, 1, providersim.OutcomeRefused, false, ""},
		{"a key never requested is voided", func(*providersim.Books) error { return nil }, 1, providersim.OutcomeVoided, false, ""},
		{"a cancellation of another reference changes nothing", func(b *providersim.Books) error {
			_, err := b.Request(ctx, "k", accept("ref", new(atomic.Int32)))
			return err
		}, 1, providersim.OutcomeAccepted, false, "someone-else"},
		{"a cancellation of its reference cancels it", func(b *providersim.Books) error {
			_, err := b.Request(ctx, "k", accept("ref", new(atomic.Int32)))
			return err
		}, 1, providersim.OutcomeAccepted, true, "ref"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := openBooks(t, "gateway")[0]
			if err := tc.before(b); err != nil {
				t.Fatal(err)
			}
			var rec providersim.Record
			for range tc.cancels {
				var err error
				if rec, err = b.Cancel(ctx, "k", tc.reference, "voided before it was requested"); err != nil {
					t.Fatal(err)
				}
			}
			listed, err := b.List(ctx, providersim.Filter{Key: "k"})
			if err != nil {
				t.Fatal(err)
			}
			if len(listed) != 1 {
				t.Fatalf("books: got %d records, want 1", len(listed))
			}
			for _, r := range []providersim.Record{rec, listed[0]} {
				if r.Outcome != tc.wantOutcome || r.Cancelled != tc.wantCancelled || r.Cancels != tc.cancels {
					t.Errorf("record: got outcome %s cancelled %v cancels %d, want %s %v %d",
						r.Outcome, r.Cancelled, r.Cancels, tc.wantOutcome, tc.wantCancelled, tc.cancels)
				}
			}
		})
	}
}

func TestARequestAfterItsCancellationIsRefusedWithoutEffect(t *testing.T) {
	ctx := context.Background()
	b := openBooks(t, "carrier")[0]
	if _, err := b.Cancel(ctx, "order-1", "", "cancelled before it was booked"); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	rec, err := b.Request(ctx, "order-1", accept("shp_1", &calls))
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 0 {
		t.Errorf("decide calls: got %d, want 0", calls.Load())
	}
	if rec.Outcome != providersim.OutcomeVoided || rec.Reason != "cancelled before it was booked" || rec.Reference != "" {
		t.Errorf("answer: got %+v, want VOIDED with the void's reason and no reference", rec.Answer)
	}
}

func TestBadRequests(t *testing.T) {
	ctx := context.Background()
	b := openBooks(t, "gateway")[0]
	if _, err := b.Request(ctx, "", accept("x", new(atomic.Int32))); !errors.Is(err, providersim.ErrNoKey) {
		t.Errorf("request without a key: got %v, want ErrNoKey", err)
	}
	if _, err := b.Cancel(ctx, "", "", "r"); !errors.Is(err, providersim.ErrNoKey) {
		t.Errorf("cancel without a key: got %v, want ErrNoKey", err)
	}
	void := func() providersim.Answer { return providersim.Answer{Outcome: providersim.OutcomeVoided} }
	if _, err := b.Request(ctx, "k", void); err == nil {
		t.Error("decide answering VOIDED: got no error")
	}
	recs, err := b.List(ctx, providersim.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Errorf("books after refused calls: got %+v, want none", recs)
	}
	if _, err := providersim.New(nil, "gateway"); err == nil {
		t.Error("New without a database: got no error")
	}
}

func TestProvidersKeepSeparateBooks(t *testing.T) {
	ctx := context.Background()
	books := openBooks(t, "gateway", "carrier")
	if _, err := books[0].Request(ctx, "order-1", accept("pay_1", new(atomic.Int32))); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	rec, err := books[1].Request(ctx, "order-1", accept("shp_1", &calls))
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 || rec.Reference != "shp_1" {
		t.Errorf("carrier's first request of a key the gateway knows: got %d decide calls and %q, want 1 and shp_1", calls.Load(), rec.Reference)
	}
	for i, want := range []string{"pay_1", "shp_1"} {
		recs, err := books[i].List(ctx, providersim.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Reference != want {
			t.Errorf("books %d: got %+v, want one record %s", i, recs, want)
		}
	}
}
