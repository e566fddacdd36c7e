package sqlite_test

import (
	"context"
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
