package postgres

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres/pgtest"
)

// openFresh opens a backend with cfg on a schema of its own, closed at
// cleanup.
func openFresh(ctx context.Context, t *testing.T, cfg Config) *Backend {
	t.Helper()
	b, err := Open(ctx, pgtest.SchemaURL(t, "queue_test"), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// subscribeJobs subscribes a new subscriber of group "g" of b to topic
// "jobs" (which must exist); the subscriber is closed at cleanup.
func subscribeJobs(ctx context.Context, t *testing.T, b *Backend) (message.Subscriber, <-chan *message.Message) {
	t.Helper()
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ch, err := sub.Subscribe(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	return sub, ch
}

// nextMessage returns the next message of ch, or fails the test after
// 10s; who names the consumer.
func nextMessage(t *testing.T, ch <-chan *message.Message, who string) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("%s got nothing within 10s", who)
		return nil
	}
}

// holdGroupLock takes the lock of group "g" of topic "jobs" in a
// transaction of its own, as a batch's transaction does, until cleanup,
// and returns that transaction: the session claimDelivery wants.
func holdGroupLock(ctx context.Context, t *testing.T, b *Backend) batchSession {
	t.Helper()
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	return lockGroupIn(ctx, t, tx)
}

// lockGroupIn takes the lock of group "g" of topic "jobs" in transaction
// tx and returns it as a batch's session.
func lockGroupIn(ctx context.Context, t *testing.T, tx *sql.Tx) batchSession {
	t.Helper()
	var s batchSession
	if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid(), (SELECT virtualtransaction FROM pg_locks
		WHERE locktype = 'virtualxid' AND pid = pg_backend_pid() AND granted)
		FROM (SELECT pg_advisory_xact_lock($1)) l`, groupLockKey("jobs", "g")).Scan(&s.pid, &s.vxid); err != nil {
		t.Fatal(err)
	}
	return s
}
