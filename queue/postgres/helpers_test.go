package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres"
	"github.com/orderflow/orderflow/queue/postgres/pgtest"
)

// testDSN returns a DSN on a fresh schema of the test server, dropped when
// the test ends (see pgtest.SchemaURL).
func testDSN(t testing.TB) string {
	t.Helper()
	return pgtest.SchemaURL(t, "queue_test")
}

// openBackend opens a backend that the test closes when it ends.
func openBackend(t testing.TB, dsn string, cfg postgres.Config) *postgres.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := postgres.Open(ctx, dsn, cfg)
	if err != nil {
		t.Fatalf("open backend: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close backend: %v", err)
		}
	})
	return b
}

// fastConfig keeps redelivery pauses short so tests do not wait.
func fastConfig() postgres.Config {
	return postgres.Config{ResendInterval: 10 * time.Millisecond}
}

func newSubscriber(t testing.TB, b *postgres.Backend, group string) message.Subscriber {
	t.Helper()
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: group})
	if err != nil {
		t.Fatalf("subscriber of %s: %v", group, err)
	}
	t.Cleanup(func() {
		if err := sub.Close(); err != nil {
			t.Errorf("close subscriber: %v", err)
		}
	})
	return sub
}

func subscribe(t testing.TB, sub message.Subscriber, topic string) <-chan *message.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe to %s: %v", topic, err)
	}
	return ch
}

func publish(t testing.TB, b *postgres.Backend, topic string, msgs ...*message.Message) {
	t.Helper()
	if err := b.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}

// receive waits for the next message or fails the test.
func receive(t testing.TB, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case msg, ok := <-ch:
		if !ok {
			t.Fatal("messages channel closed, want a message")
		}
		return msg
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return nil
}

// expectNothing fails the test if a message arrives within d, or if the
// subscription ends (a closed channel would deliver nothing either).
func expectNothing(t testing.TB, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case msg, ok := <-ch:
		if !ok {
			t.Fatalf("messages channel closed, want it open and quiet for %s", d)
		}
		t.Fatalf("got message %s (attempt %s), want none for %s", msg.UUID, msg.Metadata.Get(backend.MetadataAttempt), d)
	case <-time.After(d):
	}
}

func newTopic(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("t-%s", strings.ToLower(watermill.NewULID()))
}
