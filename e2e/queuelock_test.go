package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
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
		db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatalf("take the queue file's write lock: %v", err)
		}
		held := true
		release := func() {
			if held {
				held = false
				if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
					t.Errorf("let the queue file's write lock go: %v", err)
				}
				_ = conn.Close()
			}
		}
		t.Cleanup(release)

		const n = 8
		var placed []harness.Order
		for i, req := range orderMix(n, 17, "SKU-1", "SKU-3") {
			o, err := placeOnce(ctx, sys, req)
			if err != nil {
				t.Fatalf("order %d while the queue takes no writes: %v", i, err)
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

// placeOnce sends one POST /orders, not retried (the harness's client
// sends a 503 again), and returns the order it placed or why it did not.
func placeOnce(ctx context.Context, sys *harness.System, req harness.OrderRequest) (harness.Order, error) {
	req.CustomerID = "customer-e2e"
	body, err := json.Marshal(req)
	if err != nil {
		return harness.Order{}, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, sys.Service(harness.OrderService).HTTPURL()+"/orders", bytes.NewReader(body))
	if err != nil {
		return harness.Order{}, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Idempotency-Key", harness.NewKey())
	began := time.Now()
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		return harness.Order{}, err
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(res.Body)
	if err != nil {
		return harness.Order{}, err
	}
	if res.StatusCode != http.StatusCreated {
		return harness.Order{}, fmt.Errorf("POST /orders: %d after %s: %s", res.StatusCode, time.Since(began).Round(time.Millisecond), answer)
	}
	var o harness.Order
	if err := json.Unmarshal(answer, &o); err != nil {
		return harness.Order{}, fmt.Errorf("POST /orders: %w: %s", err, answer)
	}
	return o, nil
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
