package e2e

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the test's own connection to the queue file

	"github.com/orderflow/orderflow/e2e/harness"
)

// Scenario 16. The queue takes no writes for a while: another process
// holds the SQLite queue file's write lock (as a long checkpoint of a tool,
// or a stuck process of an older release, can). Orders are still accepted:
// the order service commits each with its first command in its own
// database, and the command waits in its outbox, which GET /outbox shows;
// no order goes further. Once the lock is let go the outbox drains and
// every order completes: none lost, none twice.
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
		placed := placeAll(t, ctx, sys, orderMix(n, 17, "SKU-1", "SKU-3"))
		var pending int64
		for deadline := time.Now().Add(10 * time.Second); ; {
			var ob struct {
				Pending int64 `json:"pending"`
			}
			if err := sys.Client().AdminGet(ctx, harness.OrderService, "/outbox", &ob); err != nil {
				t.Fatal(err)
			}
			if pending = ob.Pending; pending >= n || time.Now().After(deadline) {
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		if pending < n {
			t.Errorf("order's outbox while the queue takes no writes: %d messages, want at least %d (a ReserveStock per order)", pending, n)
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
