package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/memory"
)

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return nil
	}
}

func TestDeliveriesCarryAttemptsAndHonourRetryDelays(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish("jobs", message.NewMessage("m1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	m := receive(t, ch)
	if got := m.Metadata.Get(backend.MetadataAttempt); got != "1" {
		t.Errorf("first attempt: got %q, want 1", got)
	}
	m.Metadata.Set(backend.MetadataLastError, "boom")
	delay.Message(m, delay.For(50*time.Millisecond))
	start := time.Now()
	m.Nack()
	m = receive(t, ch)
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("redelivered after %v, want at least the 50ms retry delay", waited)
	}
	if got, want := m.Metadata.Get(backend.MetadataAttempt), "2"; got != want {
		t.Errorf("second attempt: got %q, want %q", got, want)
	}
	if got, want := m.Metadata.Get(backend.MetadataLastError), "boom"; got != want {
		t.Errorf("last error: got %q, want %q", got, want)
	}
	m.Ack()
}

func TestReplayForAnotherGroupIsSkipped(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	sub, _ := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "audit"})
	defer sub.Close()
	ch, _ := sub.Subscribe(context.Background(), "orders")
	replay := message.NewMessage("r", nil)
	replay.Metadata.Set(backend.MetadataReplayForGroup, "billing")
	if err := b.Publisher().Publish("orders", replay, message.NewMessage("n", nil)); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, ch).UUID; got != "n" {
		t.Errorf("audit received %q, want only the message not meant for billing (n)", got)
	}
}

func TestDeadLetterStore(t *testing.T) {
	ctx := context.Background()
	b := memory.New(nil)
	defer b.Close()
	dls := b.DeadLetters()
	for _, dl := range []backend.DeadLetter{
		{MessageUUID: "a", Topic: "t1", ConsumerGroup: "g"},
		{MessageUUID: "a", Topic: "t1", ConsumerGroup: "g"}, // duplicate: stored once
		{MessageUUID: "b", Topic: "t2", ConsumerGroup: "g"},
	} {
		if err := dls.Put(ctx, dl); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := dls.List(ctx, backend.DeadLetterFilter{})
	if len(all) != 2 {
		t.Fatalf("dead letters: got %d, want 2", len(all))
	}
	if _, err := dls.Get(ctx, 99); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get(99): got %v, want ErrNotFound", err)
	}
	if n, _ := dls.Purge(ctx, backend.DeadLetterFilter{Topic: "t1"}); n != 1 {
		t.Errorf("purge t1: got %d, want 1", n)
	}
	if err := dls.Delete(ctx, all[1].ID); err != nil {
		t.Errorf("delete: %v", err)
	}
}
