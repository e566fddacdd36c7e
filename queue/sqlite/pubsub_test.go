package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// closingSubscriber closes the Backend it was opened with, so that every
// constructor call of the suite behaves like a separate process on the same
// file.
type closingSubscriber struct {
	message.Subscriber
	b *sqlite.Backend
}

func (s closingSubscriber) SubscribeInitialize(topic string) error {
	return s.Subscriber.(message.SubscribeInitializer).SubscribeInitialize(topic)
}

func (s closingSubscriber) Close() error {
	err := s.Subscriber.Close()
	if cerr := s.b.Close(); err == nil {
		err = cerr
	}
	return err
}

func TestPubSub(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	constructor := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		t.Helper()
		b, err := sqlite.Open(context.Background(), path, sqlite.Config{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: group})
		if err != nil {
			t.Fatalf("subscriber: %v", err)
		}
		return b.Publisher(), closingSubscriber{Subscriber: sub, b: b}
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
		func(t *testing.T) (message.Publisher, message.Subscriber) { return constructor(t, "test") },
		constructor,
	)
}
