package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// TestABusyConsumerLeavesTheBacklogToAnIdleOne: two consumers of one group,
// one handler slot each, on a backlog. The first must not claim the whole
// backlog into its buffer while its one handler is busy; the second must get
// work at the same time.
func TestABusyConsumerLeavesTheBacklogToAnIdleOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	open := func() *sqlite.Backend {
		b, err := sqlite.Open(ctx, path, sqlite.Config{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	subscribe := func(b *sqlite.Backend) <-chan *message.Message {
		sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "workers", Concurrency: 1})
		if err != nil {
			t.Fatalf("subscriber: %v", err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		if err := sub.(message.SubscribeInitializer).SubscribeInitialize("jobs"); err != nil {
			t.Fatalf("subscribe initialize: %v", err)
		}
		ch, err := sub.Subscribe(ctx, "jobs")
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		return ch
	}
	first, second := open(), open()
	firstMsgs := subscribe(first)
	var msgs []*message.Message
	for range 8 {
		msgs = append(msgs, message.NewMessage(watermill.NewUUID(), nil))
	}
	if err := first.Publisher().Publish("jobs", msgs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
	held := receiveWithin(t, firstMsgs, 5*time.Second, "the first consumer")
	// The first consumer's only handler is busy with held. The second
	// consumer, started now, must find the rest of the backlog.
	secondMsgs := subscribe(second)
	other := receiveWithin(t, secondMsgs, 5*time.Second, "the second consumer while the first is busy")
	other.Ack()
	held.Ack()
}

func receiveWithin(t *testing.T, ch <-chan *message.Message, d time.Duration, who string) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(d):
		t.Fatalf("%s received nothing within %v", who, d)
		return nil
	}
}

// A subscriber whose claims fail (here a trigger makes every UPDATE of a
// delivery abort, as a damaged or unwritable file would) backs off and
// keeps trying: nothing is delivered meanwhile, nothing crashes, and the
// message comes once the claims work again.
func TestASubscriberWhoseClaimsFailBacksOffAndRecovers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b, err := sqlite.Open(ctx, path, sqlite.Config{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "workers", Concurrency: 1})
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if err := sub.(message.SubscribeInitializer).SubscribeInitialize("jobs"); err != nil {
		t.Fatalf("subscribe initialize: %v", err)
	}
	other, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`CREATE TRIGGER fail_claims BEFORE UPDATE ON queue_deliveries
		BEGIN SELECT RAISE(ABORT, 'claims fail (test)'); END`); err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish("jobs", message.NewMessage(watermill.NewUUID(), []byte("x"))); err != nil {
		t.Fatalf("publish: %v", err)
	}
	msgs, err := sub.Subscribe(ctx, "jobs")
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	select {
	case m, ok := <-msgs:
		if !ok {
			t.Fatal("the subscription ended when its claims failed")
		}
		t.Fatalf("got message %s while every claim failed", m.UUID)
	case <-time.After(500 * time.Millisecond): // a few failed claims, backing off
	}
	if _, err := other.Exec(`DROP TRIGGER fail_claims`); err != nil {
		t.Fatal(err)
	}
	m := receiveWithin(t, msgs, 10*time.Second, "the subscriber after its claims work again")
	if m == nil {
		t.Fatal("the subscription ended instead of delivering the message")
	}
	if got := m.Metadata.Get(backend.MetadataAttempt); got != "1" {
		t.Errorf("attempt: got %q, want 1 (the failed claims leased nothing)", got)
	}
	m.Ack()
}
