package service

import (
	"context"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/services/order/internal/app"
)

// The retention round forgets Idempotency-Keys older than the configured
// retention, as it forgets processed reply ids: such a key then places a
// new order.
func TestRetentionPurgesIdempotencyKeys(t *testing.T) {
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{URL: "memory://"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	const retention = 3 * time.Hour // not the default, so that the configured one is seen kept
	s, err := New(ctx, Config{Queue: q, DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", AdminAddr: "off", DedupRetention: retention})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	place := func(sku string) (app.PlaceOrderResult, error) {
		return s.app.Commands.PlaceOrder.Handle(ctx, app.PlaceOrder{
			CustomerID: "c-1", Items: []app.Line{{SKU: sku, Quantity: 1}}, IdempotencyKey: "k-1",
		})
	}
	keys := func() int {
		t.Helper()
		var n int
		if err := s.db.Reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM idempotency_keys`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	first, err := place("SKU-1")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		after    time.Duration
		wantKeys int
	}{
		{"within the retention", retention - time.Hour, 1},
		{"past the retention", retention + time.Hour, 0},
	}
	for _, tc := range tests {
		s.purgeExpired(ctx, time.Now().Add(tc.after))
		if got := keys(); got != tc.wantKeys {
			t.Errorf("%s: got %d idempotency keys, want %d", tc.name, got, tc.wantKeys)
		}
	}
	// The key is free again: another body under it places another order
	// instead of being refused as a reuse.
	second, err := place("SKU-2")
	if err != nil || second.OrderID == first.OrderID || second.Replayed {
		t.Errorf("the purged key again: got %+v, %v; want a new order", second, err)
	}
}
