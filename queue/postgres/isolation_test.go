package postgres_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// TestSlowHandlerDoesNotStallOtherTopics: while one group's handler holds
// a message, a message published afterwards on another topic reaches its
// group promptly. (With watermill-sql's FOR UPDATE on the offsets row, the
// holder's transaction id held pg_snapshot_xmin back and hid every newer
// message on the server until the ack.)
func TestSlowHandlerDoesNotStallOtherTopics(t *testing.T) {
	b := openBackend(t, testDSN(t), fastConfig())
	slowTopic, fastTopic := newTopic(t), newTopic(t)

	publish(t, b, slowTopic, message.NewMessage("slow-1", []byte("x")))
	slow := subscribe(t, newSubscriber(t, b, "slow"), slowTopic)
	held := receive(t, slow)
	defer held.Ack()

	fast := subscribe(t, newSubscriber(t, b, "fast"), fastTopic)
	time.Sleep(50 * time.Millisecond)
	publish(t, b, fastTopic, message.NewMessage("fast-1", []byte("y")))
	// Stalled, the fast topic would get nothing until the held message's
	// ack, which comes only when the test ends.
	select {
	case msg := <-fast:
		msg.Ack()
	case <-time.After(10 * time.Second):
		t.Fatalf("fast topic: no message within 10s while another group's handler held its message")
	}
}

// TestCompetingConsumersNoDuplicates: consumers of one group that compete
// (each on its own connection, as separate processes would) take turns on
// the group's advisory lock, so without crashes, closes or nacks every
// message is handled exactly once, and consumers of another group still get
// every message.
func TestCompetingConsumersNoDuplicates(t *testing.T) {
	b := openBackend(t, testDSN(t), fastConfig())
	topic := newTopic(t)
	const total = 600
	var msgs []*message.Message
	for i := range total {
		msgs = append(msgs, message.NewMessage(fmt.Sprintf("m-%04d", i), nil))
	}
	for i := 0; i < total; i += 100 {
		publish(t, b, topic, msgs[i:i+100]...)
	}

	counts := map[string]map[string]int{"workers": {}, "audit": {}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	done := make(chan struct{})
	var distinct atomic.Int64 // distinct (group, message) pairs handled
	consume := func(group string, ch <-chan *message.Message) {
		defer wg.Done()
		for {
			select {
			case msg := <-ch:
				mu.Lock()
				counts[group][msg.UUID]++
				first := counts[group][msg.UUID] == 1
				mu.Unlock()
				msg.Ack()
				if first && distinct.Add(1) == 2*total {
					close(done)
				}
			case <-done:
				return
			}
		}
	}
	for range 4 {
		wg.Add(1)
		go consume("workers", subscribe(t, newSubscriber(t, b, "workers"), topic))
	}
	wg.Add(1)
	go consume("audit", subscribe(t, newSubscriber(t, b, "audit"), topic))

	select {
	case <-done:
	case <-time.After(60 * time.Second):
		close(done)
		wg.Wait()
		t.Fatalf("handled %d distinct deliveries in 60s, want %d", distinct.Load(), 2*total)
	}
	wg.Wait()

	for group, byUUID := range counts {
		if len(byUUID) != total {
			t.Errorf("group %s: got %d distinct messages, want %d", group, len(byUUID), total)
		}
		for uuid, n := range byUUID {
			if n != 1 {
				t.Errorf("group %s: message %s handled %d times, want once", group, uuid, n)
			}
		}
	}
	expectNothing(t, subscribe(t, newSubscriber(t, b, "workers"), topic), 300*time.Millisecond)
}
