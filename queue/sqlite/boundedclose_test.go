package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// lockedBusyTimeout is the busy timeout of the tests below, whose lock is
// held by another connection for longer: a close that waited for the lock
// would take at least this long, so each bound below is far under it
// (and far over what the close takes, even on a loaded machine).
const lockedBusyTimeout = 30 * time.Second

// within is the bound the tests below put on a close or stop that must
// not wait for the lock.
const within = lockedBusyTimeout / 3

// A process with nothing left to write closes at once, even while another
// process holds the queue's write lock: the close's flush begins no
// transaction of its own. It used to begin an empty one, which waited the
// whole busy timeout (twice that after a wait for the lock file) and then
// failed, so every idle service took 30 s to stop.
func TestClosingWithNothingToWriteTakesNoLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := sqlite.Open(t.Context(), path, sqlite.Config{BusyTimeout: lockedBusyTimeout})
	if err != nil {
		t.Fatal(err)
	}
	publishReceiveAck(t, b.Publisher(), subscribeWorkers(t, b), "m-1")
	waitForDeliveries(t, path, 0) // the ack is committed: nothing is left to write
	release := sqlite.HoldSQLiteLock(t, path)
	defer release()

	began := time.Now()
	err = b.Close()
	if took := time.Since(began); took > within {
		t.Errorf("Close while another connection holds the write lock, nothing to write: took %s, want well under the busy timeout (%s)", took.Round(time.Millisecond), lockedBusyTimeout)
	}
	if err != nil {
		t.Errorf("Close: %v", err)
	}
}

// Shutdown stops waiting for another process's write lock when its context
// ends, and what it gives up keeps at-least-once delivery: an ack not
// committed leaves its message to be delivered again, and a publish not
// committed fails, so that its caller (an outbox) keeps the message.
func TestShutdownGivesUpWaitingForTheLockWithoutLosingAMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	cfg := sqlite.Config{BusyTimeout: lockedBusyTimeout, Lease: time.Second}
	b, err := sqlite.Open(t.Context(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "workers"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	var m1 *message.Message
	select {
	case m1 = <-msgs:
	case <-time.After(10 * time.Second):
		t.Fatal("m-1 not received")
	}

	release := sqlite.HoldSQLiteLock(t, path)
	defer release()
	m1.Ack() // queued: it waits for the lock
	published := make(chan error, 1)
	go func() { published <- b.Publisher().Publish("jobs", message.NewMessage("m-2", []byte("y"))) }()
	cancel()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}

	sctx, stop := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer stop()
	began := time.Now()
	if err := b.Shutdown(sctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if took := time.Since(began); took > within {
		t.Errorf("Shutdown with a 500ms deadline while another connection holds the write lock: took %s, want well under the busy timeout (%s)", took.Round(time.Millisecond), lockedBusyTimeout)
	}
	select {
	case err := <-published:
		if err == nil {
			t.Fatal("Publish of m-2, given up by Shutdown: got nil, want an error (it was not committed)")
		}
		t.Logf("Publish of m-2 given up: %v", err)
	case <-time.After(within):
		t.Fatal("Publish of m-2 still waiting after Shutdown returned")
	}
	release()

	if n := messagesWithUUID(t, path, "m-2"); n != 0 {
		t.Errorf("m-2, whose Publish failed: %d stored, want 0", n)
	}
	// m-1's ack was given up: it is delivered again, its attempt counted.
	again, err := sqlite.Open(t.Context(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	select {
	case m := <-subscribeWorkers(t, again):
		expectDelivery(t, m, "m-1", "2")
		m.Ack()
	case <-time.After(within):
		t.Fatal("m-1, whose ack Shutdown gave up, not delivered again")
	}
}

// Ending a subscription's context stops it at once, even while its claim
// waits for another process's write lock: the claim, abandoned, takes
// nothing, and the message goes to the next consumer as a first attempt.
// The subscription used to wait for the claim, up to the busy timeout,
// and with it the service's stop.
func TestEndingASubscriptionDoesNotWaitForItsClaim(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	// One message per claim, one handler: m-2 is claimed once m-1 is acked.
	cfg := sqlite.Config{BusyTimeout: lockedBusyTimeout, ClaimBatch: 1}
	b, err := sqlite.Open(t.Context(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "workers"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x")), message.NewMessage("m-2", []byte("y"))); err != nil {
		t.Fatal(err)
	}
	var m1 *message.Message
	select {
	case m1 = <-msgs:
		expectDelivery(t, m1, "m-1", "1")
	case <-time.After(within):
		t.Fatal("m-1 not received")
	}
	release := sqlite.HoldSQLiteLock(t, path)
	defer release()
	busy, queued := sqlite.BusyBegins(b), sqlite.Queued(b)
	m1.Ack() // frees the handler: m-2's claim waits for the lock
	waitForBusyBegins(t, b, busy)
	for deadline := time.Now().Add(within); sqlite.Queued(b) < queued+2; { // the ack, then the claim
		if time.Now().After(deadline) {
			t.Fatal("m-2 not claimed after m-1's ack")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	began := time.Now()
	select {
	case m, ok := <-msgs:
		if ok {
			t.Fatalf("after the context ended: got message %s, want the channel closed", m.UUID)
		}
	case <-time.After(within):
		t.Fatalf("subscription still open %s after its context ended, its claim waiting for the lock", within)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > within {
		t.Errorf("stopping the subscription took %s, want well under the busy timeout (%s)", took.Round(time.Millisecond), lockedBusyTimeout)
	}
	release()

	select {
	case m := <-subscribeWorkers(t, b):
		expectDelivery(t, m, "m-2", "1")
		m.Ack()
	case <-time.After(within):
		t.Fatal("m-2 not delivered after the lock was let go")
	}
}

// waitForBusyBegins waits until a write transaction of b has found the
// write lock taken since b counted before.
func waitForBusyBegins(t *testing.T, b *sqlite.Backend, before int64) {
	t.Helper()
	deadline := time.Now().Add(within)
	for sqlite.BusyBegins(b) == before {
		if time.Now().After(deadline) {
			t.Fatal("no write transaction waited for the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitForDeliveries waits until the file holds n deliveries.
func waitForDeliveries(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for deliveries(t, path) != n {
		if time.Now().After(deadline) {
			t.Fatalf("deliveries: got %d, want %d", deliveries(t, path), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// messagesWithUUID counts the messages of the file with uuid.
func messagesWithUUID(t *testing.T, path, uuid string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM queue_messages WHERE uuid = ?`, uuid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Open stops waiting for another process's write lock (which creating the
// schema takes) when its context ends, with the context's error: a
// service told to stop during its start stops then, not once the busy
// timeout has passed.
func TestOpenStopsWaitingForTheLockWhenItsContextEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	cfg := sqlite.Config{BusyTimeout: lockedBusyTimeout}
	b, err := sqlite.Open(t.Context(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	release := sqlite.HoldSQLiteLock(t, path)
	defer release()

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	b, err = sqlite.Open(ctx, path, cfg)
	took := time.Since(began)
	if err == nil {
		_ = b.Close()
		t.Fatal("Open while another connection holds the write lock and the context ends: got a queue, want an error")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open: got %v, want the context's error", err)
	}
	if took > within {
		t.Errorf("Open took %s after its context ended, want well under the busy timeout (%s)", took.Round(time.Millisecond), lockedBusyTimeout)
	}
}
