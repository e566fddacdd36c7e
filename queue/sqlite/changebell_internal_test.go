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
	// Neither safety net (an hour apart) can stand in for the bell.
	consumer, err := Open(t.Context(), path, WithSafetyNets(Config{}, time.Hour))
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
	busy := producer.writeCounts.busyBegins.Load()
	published := publishInBackground(producer, "m-1")
	awaitWriterBlocked(t, producer, busy) // with the publish
	const took = 3 * time.Second
	if err := producer.submit(slowStandaloneOp{took: took}, false); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	release() // the op joins the publish's transaction and runs after its commit

	select {
	case m := <-msgs:
		m.Ack()
		if waited := time.Since(released); waited >= took {
			t.Errorf("m-1 received %v after the lock's release: the commit woke nobody until the %v op had run (want it at once)", waited, took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("m-1 not received")
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
}
