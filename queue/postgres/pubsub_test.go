package postgres_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/orderflow/orderflow/queue/backend"
)

// TestPubSub runs Watermill's universal suite. All its pubsubs share one
// backend (one connection pool per process, as in a service); each gets a
// publisher of its own because the suite closes them.
func TestPubSub(t *testing.T) {
	dsn := testDSN(t)
	cfg := fastConfig()
	cfg.SubscriberMaxOpenConns = 30
	cfg.MaxOpenConns = 15
	b := openBackend(t, dsn, cfg)

	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		pub, err := b.NewPublisher()
		if err != nil {
			t.Fatalf("new publisher: %v", err)
		}
		sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: group})
		if err != nil {
			t.Fatalf("new subscriber: %v", err)
		}
		return pub, sub
	}

	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                      true,
			ExactlyOnceDelivery:                 false,
			GuaranteedOrder:                     false,
			GuaranteedOrderWithSingleSubscriber: true,
			Persistent:                          true,
			RequireSingleInstance:               false,
			NewSubscriberReceivesOldMessages:    false,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return newPubSub(t, "test") },
		newPubSub,
	)
}
