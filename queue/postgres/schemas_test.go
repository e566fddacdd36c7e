package postgres_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Two queues in different schemas of one database are independent: a
// consumer group busy in one does not hold up the same-named group of the
// same topic in the other (advisory locks belong to the database).
func TestQueuesInTwoSchemasDoNotShareGroupLocks(t *testing.T) {
	a := openBackend(t, testDSN(t), fastConfig())
	b := openBackend(t, testDSN(t), fastConfig())
	const topic, group = "orders", "billing"

	publish(t, a, topic, message.NewMessage("a1", []byte("{}")))
	held := receive(t, subscribe(t, newSubscriber(t, a, group), topic))
	defer held.Ack() // holds schema A's batch until the test ends

	publish(t, b, topic, message.NewMessage("b1", []byte("{}")))
	ch := subscribe(t, newSubscriber(t, b, group), topic)
	select {
	case msg := <-ch:
		if msg.UUID != "b1" {
			t.Fatalf("schema B: got %s, want b1", msg.UUID)
		}
		msg.Ack()
	case <-time.After(5 * time.Second):
		t.Fatal("schema B's group got nothing in 5s while schema A's same-named group held a batch")
	}
}
