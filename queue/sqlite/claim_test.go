package sqlite_test

import (
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
	open := func() *sqlite.Backend { return openShared(t, path, sqlite.Config{}) }
	subscribe := func(b *sqlite.Backend) <-chan *message.Message { return subscribeWorkers(t, b) }
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
	b := openShared(t, path, sqlite.Config{})
	other, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`CREATE TRIGGER fail_claims BEFORE UPDATE ON queue_deliveries
		BEGIN SELECT RAISE(ABORT, 'claims fail (test)'); END`); err != nil {
		t.Fatal(err)
	}
	msgs := subscribeWorkers(t, b)
	if err := b.Publisher().Publish("jobs", message.NewMessage(watermill.NewUUID(), []byte("x"))); err != nil {
		t.Fatalf("publish: %v", err)
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

// openShared opens the queue file at path as one more process on it would;
// it is closed when the test ends.
func openShared(t *testing.T, path string, cfg sqlite.Config) *sqlite.Backend {
	t.Helper()
	b, err := sqlite.Open(t.Context(), path, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
