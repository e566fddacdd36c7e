package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/backend/backendtest"
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

// closesWithin reports whether ch is closed, with nothing more handed out,
// within d.
func closesWithin(t *testing.T, ch <-chan *message.Message, d time.Duration) bool {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return true
			}
			t.Errorf("message %s was handed out after Subscribe's context ended", m.UUID)
		case <-timeout:
			return false
		}
	}
}

// TestStopLetsTheRunningHandlerFinish: when Subscribe's context ends, the
// channel closes at once and nothing more is handed out, but the message
// already handed out keeps a live context and its outcome is recorded; Close
// then gives up on a handler still running and cancels its context.
func TestStopLetsTheRunningHandlerFinish(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	sub, _ := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
	ctx, stop := context.WithCancel(context.Background())
	ch, _ := sub.Subscribe(ctx, "jobs")
	if err := b.Publisher().Publish("jobs", message.NewMessage("m1", nil)); err != nil {
		t.Fatal(err)
	}
	m := receive(t, ch)
	// Buffered in GoChannel when the stop comes: not to be handed out.
	if err := b.Publisher().Publish("jobs", message.NewMessage("m2", nil)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // m2 waits to be handed out
	stop()
	// Not reading meanwhile: m2 must go with the stop, not race a reader.
	time.Sleep(50 * time.Millisecond)
	if !closesWithin(t, ch, 5*time.Second) {
		t.Fatal("the channel stayed open after Subscribe's context ended")
	}
	if err := m.Context().Err(); err != nil {
		t.Fatalf("the running handler's context ended with Subscribe's: %v", err)
	}
	m.Metadata.Set(backend.MetadataLastError, "boom")
	m.Nack()
	// Close waits for the outcome to be recorded (and does not lose it).
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}

	// The nack was recorded: m1, published again, is at its second attempt.
	sub2, _ := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
	ch2, _ := sub2.Subscribe(context.Background(), "jobs")
	if err := b.Publisher().Publish("jobs", message.NewMessage("m1", nil)); err != nil {
		t.Fatal(err)
	}
	m = receive(t, ch2)
	if got := m.Metadata.Get(backend.MetadataAttempt); got != "2" {
		t.Errorf("attempt after a nack given while stopping: got %q, want 2", got)
	}
	if got := m.Metadata.Get(backend.MetadataLastError); got != "boom" {
		t.Errorf("last error: got %q, want boom", got)
	}
	if err := m.Context().Err(); err != nil {
		t.Fatalf("the running handler's context: %v, want live until Close", err)
	}
	if err := sub2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Context().Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("after Close, the running handler's context: %v, want cancelled", err)
	}
}

// TestStopDuringARetryDelay: a stop while a redelivery waits out its retry
// delay closes the channel at once, not after the delay.
func TestStopDuringARetryDelay(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	sub, _ := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
	defer sub.Close()
	ctx, stop := context.WithCancel(context.Background())
	ch, _ := sub.Subscribe(ctx, "jobs")
	if err := b.Publisher().Publish("jobs", message.NewMessage("m1", nil)); err != nil {
		t.Fatal(err)
	}
	m := receive(t, ch)
	delay.Message(m, delay.For(30*time.Second))
	m.Nack()
	time.Sleep(100 * time.Millisecond) // the redelivery is waiting
	stop()
	if !closesWithin(t, ch, 5*time.Second) {
		t.Fatal("the channel stayed open for the retry delay after Subscribe's context ended")
	}
}

// A subscriber closed while it subscribes neither panics nor leaves a
// subscription running.
func TestSubscribeRacingClose(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	backendtest.SubscribeRacingClose(t, 300, func() message.Subscriber {
		sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
		if err != nil {
			t.Fatal(err)
		}
		return sub
	}, "jobs")
}

func TestDeadLettersBefore(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	backendtest.DeadLettersBefore(t, b.DeadLetters(), "payment.commands")
}

func TestReplayStamped(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	backendtest.ReplayStamped(t, b, queue.ReplayDeadLetter, "payment.commands")
}
