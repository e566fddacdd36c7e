package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the test's own connection to the queue file

	"github.com/orderflow/orderflow/e2e/harness"
)

// Scenario 16. The queue takes no writes for a while: another process
// holds the SQLite queue file's write lock (as a long checkpoint of a tool,
// or a stuck process of an older release, can). Orders are still accepted,
// each at its first request (sent once, not retried): the order service
// commits each with its messages in its own database, and they wait in its
// outbox, which GET /outbox shows; no order goes further. The forwarder's
// batch that found the queue not answering held the service's write lock
// for at most its ack deadline (5 s), and no other began while that call
// hung, so the requests waiting behind it end within their own deadline
// (10 s). Once the lock is let go the outbox drains and every order
// completes: none lost, none twice.
func TestQueueTakingNoWritesHoldsOrdersInTheOutbox(t *testing.T) {
	onQueues(t, []queue{sqliteQueue}, func(t *testing.T, _ string) {
		sys := start(t, "", harness.Config{})
		ctx := timeout(t, 2*time.Minute)
		// Every service is up and idle: their first writes (topics,
		// subscriptions) are done.
		warm := placeAll(t, ctx, sys, orderMix(2, 16, "SKU-1"))
		waitTerminal(t, sys, time.Minute, ids(warm)...)

		path := queueFile(t, sys.QueueURL())
		release := holdQueueLock(t, ctx, path)

		const n = 8
		var placed []harness.Order
		for i, req := range orderMix(n, 17, "SKU-1", "SKU-3") {
			began := time.Now()
			o, status, err := sys.Client().PlaceOrderOnce(ctx, req)
			if err != nil || status != http.StatusCreated {
				t.Fatalf("order %d while the queue takes no writes: got %d after %s (%v), want 201", i, status, time.Since(began).Round(time.Millisecond), err)
			}
			placed = append(placed, o)
		}
		// Each order stored two messages: OrderPlaced and ReserveStock.
		var ob struct {
			Pending int64 `json:"pending"`
		}
		if err := sys.Client().AdminGet(ctx, harness.OrderService, "/outbox", &ob); err != nil {
			t.Fatal(err)
		}
		if ob.Pending < 2*n {
			t.Errorf("order's outbox while the queue takes no writes: %d messages, want at least %d (OrderPlaced and ReserveStock of each order)", ob.Pending, 2*n)
		}
		for _, id := range ids(placed) {
			o, err := sys.Client().GetOrder(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if o.Status != harness.StatusPending {
				t.Errorf("order %s while the queue takes no writes: %s, want PENDING (its command cannot reach inventory)", id, o.Status)
			}
		}

		release()
		for id, o := range waitTerminal(t, sys, time.Minute, ids(placed)...) {
			if o.Status != harness.StatusCompleted {
				t.Errorf("order %s after the lock was let go: %s (%s), want COMPLETED", id, o.Status, o.Reason)
			}
		}
		sys.CheckInvariants(t, harness.Expect{Orders: n + len(warm), IDs: append(ids(warm), ids(placed)...)})
		sys.CheckNoCrashes()
	})
}

// queueFile is the file of a sqlite:// queue URL (whose path the queue
// takes as written, not percent-decoded).
func queueFile(t *testing.T, queueURL string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(queueURL, "sqlite://")
	if !ok {
		t.Fatalf("queue URL %q: want sqlite://PATH", queueURL)
	}
	path, _, _ := strings.Cut(rest, "?")
	return path
}
