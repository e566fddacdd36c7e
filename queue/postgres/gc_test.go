package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
)

func TestGarbageCollectionDeletesOnlyWhatEveryGroupAcked(t *testing.T) {
	ctx := context.Background()
	b := openBackend(t, testDSN(t), fastConfig())
	topic := newTopic(t)
	fast := subscribe(t, newSubscriber(t, b, "fast"), topic)
	slowSub := newSubscriber(t, b, "slow")
	// Register the slow group without consuming: its zero offset holds
	// every message back.
	slow := subscribe(t, slowSub, topic)
	_ = slow
	var msgs []*message.Message
	for i := range 10 {
		msgs = append(msgs, message.NewMessage(fmt.Sprintf("m-%d", i), []byte("x")))
	}
	publish(t, b, topic, msgs...)
	for range 10 {
		receive(t, fast).Ack()
	}
	// The fast group's offset committed: only the slow group holds the
	// messages back.
	waitGroupStats(t, b, topic, "fast", func(g backend.GroupStats) bool { return g.Depth == 0 && g.InFlight == 0 })
	if n, err := b.CollectGarbage(ctx); err != nil || n != 0 {
		t.Fatalf("collect while the slow group lags: got %d deleted (err %v), want 0", n, err)
	}
	for range 10 {
		receive(t, slow).Ack()
	}
	deadline := time.Now().Add(10 * time.Second)
	var total int64
	for total < 10 && time.Now().Before(deadline) {
		n, err := b.CollectGarbage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		time.Sleep(50 * time.Millisecond)
	}
	if total != 10 {
		t.Errorf("collected after both groups acked: got %d, want 10", total)
	}
}
