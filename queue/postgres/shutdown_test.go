package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/backend/backendtest"
	"github.com/orderflow/orderflow/queue/postgres"
)

// openWithMessages opens a backend on a fresh database and publishes the
// messages of the given ids on a new topic, whose "billing" group exists.
func openWithMessages(t *testing.T, ids ...string) (*postgres.Backend, string) {
	t.Helper()
	b := openBackend(t, testDSN(t), fastConfig())
	topic := newTopic(t)
	if err := newSubscriber(t, b, "billing").(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	msgs := make([]*message.Message, len(ids))
	for i, id := range ids {
		msgs[i] = message.NewMessage(id, nil)
	}
	publish(t, b, topic, msgs...)
	return b, topic
}

// handOutThenEnd subscribes a "billing" consumer, takes m1 from it and ends
// the subscription's context: the channel must close without handing out
// more, while m1's context stays live. It returns the subscriber, not yet
// closed, and m1, not yet acked.
func handOutThenEnd(t *testing.T, b *postgres.Backend, topic string) (message.Subscriber, *message.Message) {
	t.Helper()
	first := newSubscriber(t, b, "billing")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := first.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	running := receive(t, ch)
	assertDelivery(t, running, "m1", "1", "", false)

	cancel()
	backendtest.ExpectClosed(t, ch)
	if err := running.Context().Err(); err != nil {
		t.Errorf("the handed-out message's context ended with the subscription's: %v", err)
	}
	return first, running
}

// TestSubscribeContextEndLetsHandedOutMessageFinish: when a Subscribe
// context ends, the subscription hands out nothing more, but the message
// being handled keeps a live context and its ack is recorded (in the
// batch's transaction, which must not be rolled back): it is not delivered
// again.
func TestSubscribeContextEndLetsHandedOutMessageFinish(t *testing.T) {
	b, topic := openWithMessages(t, "m1", "m2")
	first, running := handOutThenEnd(t, b, topic)
	running.Ack()
	if err := first.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	next := subscribe(t, newSubscriber(t, b, "billing"), topic)
	m := receive(t, next)
	assertDelivery(t, m, "m2", "1", "", false) // not m1 again
	m.Ack()
	waitGroupStats(t, b, topic, "billing", func(g backend.GroupStats) bool { return g.Depth == 0 && g.InFlight == 0 })
}

// TestCloseGivesUpHandedOutMessage: Close after the context ended cancels
// the context of the message still being handled; it comes back with this
// attempt counted.
func TestCloseGivesUpHandedOutMessage(t *testing.T) {
	b, topic := openWithMessages(t, "m1")
	first, running := handOutThenEnd(t, b, topic)
	if err := first.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := running.Context().Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("after Close, the handed-out message's context: %v, want cancelled", err)
	}
	running.Ack() // too late: not recorded

	next := subscribe(t, newSubscriber(t, b, "billing"), topic)
	m := receive(t, next)
	assertDelivery(t, m, "m1", "2", "", false)
	m.Ack()
}

// A subscriber closed while it subscribes (a process told to stop while its
// router starts) neither panics nor leaves a subscription running.
func TestSubscribeRacingClose(t *testing.T) {
	b, topic := openWithMessages(t)
	backendtest.SubscribeRacingClose(t, 50, func() message.Subscriber { return newSubscriber(t, b, "billing") }, topic)
}
