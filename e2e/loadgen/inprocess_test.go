package loadgen_test

import (
	"context"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/inprocess"
	"github.com/orderflow/orderflow/e2e/loadgen"
)

// TestAgainstRealServices runs loadgen against the real order API: the four
// services in this process (e2e/inprocess) on a SQLite queue.
func TestAgainstRealServices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sys, err := inprocess.Start(ctx, inprocess.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sys.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	// The built-in catalogue: 50 orders of at most 3 × 3 units each stay
	// within its stock except for SKU-5 (10 units), so some may be rejected.
	rep, err := loadgen.Run(ctx, loadgen.Config{
		URL: sys.OrderURL(), Rate: 50, Count: 50, WaitTimeout: time.Minute, PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Placed != 50 || rep.PlaceErrors != 0 {
		t.Fatalf("placed %d, errors %d (%s); want 50, 0", rep.Placed, rep.PlaceErrors, rep.LastError)
	}
	if rep.Terminal() != 50 || rep.TimedOutWaiting != 0 {
		t.Errorf("terminal %d (completed %d, cancelled %d, rejected %d), timed out %d; want all 50 terminal",
			rep.Terminal(), rep.Completed, rep.Cancelled, rep.Rejected, rep.TimedOutWaiting)
	}
	if rep.Completed == 0 || rep.Cancelled != 0 {
		t.Errorf("completed %d, cancelled %d; want most completed and none cancelled (no faults)", rep.Completed, rep.Cancelled)
	}
	if rep.Latency.Count != rep.Terminal() || rep.Latency.P50 <= 0 || rep.Latency.Max < rep.Latency.P99 {
		t.Errorf("latency %+v: want one sample per terminal order, positive, ordered", rep.Latency)
	}
	if rep.OrdersPerSecond <= 0 {
		t.Errorf("orders/s %.1f, want > 0", rep.OrdersPerSecond)
	}
	t.Logf("50 orders at 50/s on the real services: latency p50 %v p99 %v, %d status reads", rep.Latency.P50, rep.Latency.P99, rep.StatusReads)
}
