package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue/backend"
)

// slowStandaloneOp stands for a truncating checkpoint that waits for
// readers: a standalone op that takes its time.
type slowStandaloneOp struct{ took time.Duration }

func (op slowStandaloneOp) apply(context.Context, *writeTx) error {
	time.Sleep(op.took)
	return nil
}

func (slowStandaloneOp) standalone() {}

// A commit that made deliveries visible wakes the other processes'
// subscribers as soon as it is committed, not after a standalone op that
// joined its transaction while it waited for the lock and runs after it.
func TestAPublishRingsBeforeAStandaloneOpThatJoinedItRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	// Neither the consumer's watcher's data_version check (an hour) nor
	// the subscriber's own safety net (a second from its last look) can
	// stand in for the bell.
	consumer, err := Open(t.Context(), path, Config{versionCheckEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	producer, err := Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	sub, err := consumer.Subscriber(backend.SubscriberConfig{ConsumerGroup: "workers"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}

	release := holdSQLiteLock(t, path)
	published := publishInBackground(producer, "m-1")
	time.Sleep(100 * time.Millisecond) // the writer waits for SQLite's lock with the publish
	const took = 3 * time.Second
	if err := producer.submit(slowStandaloneOp{took: took}, false); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	release() // the op joins the publish's transaction and runs after its commit

	select {
	case m := <-msgs:
		m.Ack()
		if waited := time.Since(released); waited >= 500*time.Millisecond {
			t.Errorf("m-1 received %v after the lock's release: the commit woke nobody until later (want it at once)", waited)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("m-1 not received")
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
}
