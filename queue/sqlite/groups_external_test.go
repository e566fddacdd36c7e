package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// A consumer of the group still running when it is dropped gets nothing
// more; the ack of a message it held (which fails, as after a lost
// lease) stores nothing for it.
func TestDroppedGroupStillRunningGetsNothing(t *testing.T) {
	ctx := context.Background()
	b := openShared(t, filepath.Join(t.TempDir(), "queue.db"), sqlite.Config{})
	sub, err := b.NewSubscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs, err := sub.Subscribe(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	var held *message.Message
	select {
	case held = <-msgs:
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	if _, err := b.DropGroup(ctx, "jobs", "g"); err != nil {
		t.Fatal(err)
	}
	held.Ack()
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-2", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		t.Fatalf("got %s after the drop, want nothing", m.UUID)
	case <-time.After(500 * time.Millisecond):
	}
	stats, err := b.Inspector().Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		if len(s.Groups) > 0 {
			t.Errorf("stats of %s after the drop: %+v, want no group", s.Topic, s.Groups)
		}
	}
}
