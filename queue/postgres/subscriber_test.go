package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres"
	"github.com/orderflow/orderflow/queue/retry"
)

func assertDelivery(t *testing.T, msg *message.Message, uuid, attempt, lastError string, failed bool) {
	t.Helper()
	if msg.UUID != uuid {
		t.Errorf("got message %s, want %s", msg.UUID, uuid)
	}
	if got := msg.Metadata.Get(backend.MetadataAttempt); got != attempt {
		t.Errorf("message %s: attempt %q, want %q", msg.UUID, got, attempt)
	}
	if got := msg.Metadata.Get(backend.MetadataLastError); got != lastError {
		t.Errorf("message %s: last_error %q, want %q", msg.UUID, got, lastError)
	}
	firstFailed := msg.Metadata.Get(backend.MetadataFirstFailedAt)
	if !failed {
		if firstFailed != "" {
			t.Errorf("message %s: first_failed_at %q, want empty before any failure", msg.UUID, firstFailed)
		}
		return
	}
	at, err := time.Parse(time.RFC3339Nano, firstFailed)
	if err != nil {
		t.Errorf("message %s: first_failed_at %q: %v", msg.UUID, firstFailed, err)
	} else if age := time.Since(at); age < -5*time.Second || age > time.Minute {
		t.Errorf("message %s: first_failed_at %s is %s ago, want within the last minute", msg.UUID, at, age)
	}
}

func TestAttemptsSurviveRestart(t *testing.T) {
	dsn := testDSN(t)
	topic := newTopic(t)
	ctx := context.Background()

	b1, err := postgres.Open(ctx, dsn, fastConfig())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	publish(t, b1, topic, message.NewMessage("m1", []byte(`{"order":1}`)))
	sub1, err := b1.Subscriber(backend.SubscriberConfig{ConsumerGroup: "billing"})
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	ch1, err := sub1.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	m := receive(t, ch1)
	assertDelivery(t, m, "m1", "1", "", false)
	m.Metadata.Set(backend.MetadataLastError, "card declined")
	m.Nack()
	// The same subscription hands it out again (attempt 2), but nobody takes
	// it before the close, so that delivery must not count.
	waitAttempts(t, openSQL(t, dsn), topic, "billing", "m1", 2)
	if err := sub1.Close(); err != nil {
		t.Fatalf("close subscriber: %v", err)
	}
	if err := b1.Close(); err != nil {
		t.Fatalf("close backend: %v", err)
	}

	b2 := openBackend(t, dsn, fastConfig())
	ch2 := subscribe(t, newSubscriber(t, b2, "billing"), topic)
	m = receive(t, ch2)
	assertDelivery(t, m, "m1", "2", "card declined", true)
	firstFailed := m.Metadata.Get(backend.MetadataFirstFailedAt)

	m.Nack() // the handler set no new text: the previous error stays
	m = receive(t, ch2)
	assertDelivery(t, m, "m1", "3", "card declined", true)
	if got := m.Metadata.Get(backend.MetadataFirstFailedAt); got != firstFailed {
		t.Errorf("first_failed_at changed from %q to %q, want it kept", firstFailed, got)
	}
	m.Ack()

	// Acked: the group is drained and nothing is in flight or retrying.
	waitGroupStats(t, b2, topic, "billing", func(g backend.GroupStats) bool {
		return g.Depth == 0 && g.InFlight == 0 && g.Retrying == 0
	})
}

func TestReplayForGroup(t *testing.T) {
	b := openBackend(t, testDSN(t), fastConfig())
	topic := newTopic(t)
	replay := message.NewMessage("replay-1", []byte("r"))
	replay.Metadata.Set(backend.MetadataReplayForGroup, "billing")
	publish(t, b, topic, replay, message.NewMessage("plain-1", []byte("p")))

	shipping := subscribe(t, newSubscriber(t, b, "shipping"), topic)
	m := receive(t, shipping)
	assertDelivery(t, m, "plain-1", "1", "", false)
	m.Ack()
	expectNothing(t, shipping, 200*time.Millisecond)

	billing := subscribe(t, newSubscriber(t, b, "billing"), topic)
	for _, want := range []string{"replay-1", "plain-1"} {
		m := receive(t, billing)
		assertDelivery(t, m, want, "1", "", false)
		m.Ack()
	}
	waitGroupStats(t, b, topic, "shipping", func(g backend.GroupStats) bool { return g.Depth == 0 })
}

func TestOneMessageAtATime(t *testing.T) {
	for _, concurrency := range []int{0, 1, 4} {
		b := openBackend(t, testDSN(t), fastConfig())
		topic := newTopic(t)
		publish(t, b, topic,
			message.NewMessage("a", nil), message.NewMessage("b", nil), message.NewMessage("c", nil))
		sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "g", Concurrency: concurrency})
		if err != nil {
			t.Fatalf("subscriber with concurrency %d: %v", concurrency, err)
		}
		ch := subscribe(t, sub, topic)
		var got []string
		for range 3 {
			m := receive(t, ch)
			got = append(got, m.UUID)
			expectNothing(t, ch, 150*time.Millisecond)
			m.Ack()
		}
		if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
			t.Errorf("concurrency %d: got order %v, want %v", concurrency, got, want)
		}
		if err := sub.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
}

func TestNackDelay(t *testing.T) {
	b := openBackend(t, testDSN(t), fastConfig())
	topic := newTopic(t)
	publish(t, b, topic, message.NewMessage("m1", nil))
	ch := subscribe(t, newSubscriber(t, b, "g"), topic)

	m := receive(t, ch)
	delay.Message(m, delay.For(400*time.Millisecond))
	nackedAt := time.Now()
	m.Nack()

	// While the nack waits for its delay, the message counts as retrying.
	waitGroupStats(t, b, topic, "g", func(g backend.GroupStats) bool { return g.Retrying == 1 && g.InFlight == 0 })

	m = receive(t, ch)
	if waited := time.Since(nackedAt); waited < 390*time.Millisecond {
		t.Errorf("redelivered %s after the nack, want at least the 400ms delay", waited)
	}
	assertDelivery(t, m, "m1", "2", "message nacked", true)
	m.Ack()
}

func TestLateAck(t *testing.T) {
	cfg := fastConfig()
	cfg.AckDeadline = 300 * time.Millisecond
	b := openBackend(t, testDSN(t), cfg)
	topic := newTopic(t)
	publish(t, b, topic, message.NewMessage("slow", nil), message.NewMessage("next", nil))
	ch := subscribe(t, newSubscriber(t, b, "g"), topic)

	slow := receive(t, ch)
	// The handler runs past the deadline: its context ends, and no other
	// delivery (neither a second copy nor the next message) is handed out.
	select {
	case <-slow.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("message context not cancelled 5s after a 300ms ack deadline")
	}
	expectNothing(t, ch, 500*time.Millisecond)
	slow.Ack()

	next := receive(t, ch)
	assertDelivery(t, next, "next", "1", "", false)
	next.Ack()
	// The late ack counted: "slow" is not handed out again.
	expectNothing(t, ch, 300*time.Millisecond)
	waitGroupStats(t, b, topic, "g", func(g backend.GroupStats) bool { return g.Depth == 0 && g.InFlight == 0 })
}

func TestInspector(t *testing.T) {
	b := openBackend(t, testDSN(t), fastConfig())
	ctx := context.Background()
	topic, idle := newTopic(t), newTopic(t)
	publish(t, b, topic, message.NewMessage("a", nil), message.NewMessage("b", nil), message.NewMessage("c", nil))
	if err := b.Publisher().Publish(idle); err != nil { // no messages: nothing stored, nothing registered
		t.Fatalf("empty publish: %v", err)
	}
	if err := b.DeadLetters().Put(ctx, backend.DeadLetter{MessageUUID: "x", Topic: topic, ConsumerGroup: "g1"}); err != nil {
		t.Fatalf("put dead letter: %v", err)
	}

	ch := subscribe(t, newSubscriber(t, b, "g1"), topic)
	held := receive(t, ch) // in flight, not acked
	time.Sleep(20 * time.Millisecond)

	topics, err := b.Inspector().Topics(ctx)
	if err != nil {
		t.Fatalf("Topics: %v", err)
	}
	if !slices.Contains(topics, topic) || slices.Contains(topics, idle) || !slices.IsSorted(topics) {
		t.Errorf("Topics() = %v, want sorted and holding %s but not %s", topics, topic, idle)
	}

	ts := topicStats(t, b, topic)
	if ts.Stored != 3 || ts.DeadLetters != 1 || len(ts.Groups) != 1 {
		t.Fatalf("Stats(%s) = %+v, want stored 3, dead letters 1, one group", topic, ts)
	}
	g := ts.Groups[0]
	if g.ConsumerGroup != "g1" || g.Depth != 3 || g.InFlight != 1 || g.Retrying != 0 || g.OldestAge <= 0 {
		t.Errorf("group stats = %+v, want g1 with depth 3, in flight 1, retrying 0, oldest age > 0", g)
	}
	held.Ack()
	for range 2 {
		receive(t, ch).Ack()
	}
	waitGroupStats(t, b, topic, "g1", func(g backend.GroupStats) bool {
		return g.Depth == 0 && g.InFlight == 0 && g.OldestAge == 0
	})
	if ts := topicStats(t, b, topic); ts.Stored != 3 {
		t.Errorf("stored after acking all = %d, want 3 (watermill-sql keeps messages)", ts.Stored)
	}
}

func topicStats(t *testing.T, b *postgres.Backend, topic string) backend.TopicStats {
	t.Helper()
	stats, err := b.Inspector().Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	for _, ts := range stats {
		if ts.Topic == topic {
			return ts
		}
	}
	t.Fatalf("Stats: topic %s missing from %+v", topic, stats)
	return backend.TopicStats{}
}

// waitGroupStats polls Stats until ok accepts the group's numbers: offsets
// are stored when a batch ends, a moment after the ack.
func waitGroupStats(t *testing.T, b *postgres.Backend, topic, group string, ok func(backend.GroupStats) bool) {
	t.Helper()
	var last backend.GroupStats
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, g := range topicStats(t, b, topic).Groups {
			if g.ConsumerGroup == group {
				last = g
				if ok(g) {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("stats of %s/%s after 5s: got %+v, want them to satisfy the condition", topic, group, last)
}

// TestAnAckedDeliveryIsForgottenByTheNextClaim checks the bookkeeping that
// saves a commit per message: an acked message's delivery row is deleted
// by the next claim, and a batch that ends with a message handed to nobody
// (a replay for another group) does not leave the last acked one counted
// in flight.
func TestAnAckedDeliveryIsForgottenByTheNextClaim(t *testing.T) {
	b := openBackend(t, testDSN(t), fastConfig())
	topic := newTopic(t)
	replayForOther := message.NewMessage("replay-for-other", nil)
	replayForOther.Metadata.Set(backend.MetadataReplayForGroup, "other")
	publish(t, b, topic, message.NewMessage("m1", nil), message.NewMessage("m2", nil), replayForOther)
	ch := subscribe(t, newSubscriber(t, b, "g"), topic)

	m1 := receive(t, ch)
	assertDelivery(t, m1, "m1", "1", "", false)
	m1.Ack()
	m2 := receive(t, ch)
	assertDelivery(t, m2, "m2", "1", "", false)
	// The batch is still open, so the offset has not moved, but m1's row
	// went with m2's claim.
	if g := groupStats(t, b, topic, "g"); g.InFlight != 1 {
		t.Errorf("while m2 is handled: in flight %d, want 1 (m2 only)", g.InFlight)
	}
	m2.Ack()
	expectNothing(t, ch, 200*time.Millisecond)
	waitGroupStats(t, b, topic, "g", func(g backend.GroupStats) bool { return g.Depth == 0 && g.InFlight == 0 })
}

func groupStats(t *testing.T, b *postgres.Backend, topic, group string) backend.GroupStats {
	t.Helper()
	for _, g := range topicStats(t, b, topic).Groups {
		if g.ConsumerGroup == group {
			return g
		}
	}
	t.Fatalf("Stats(%s): no group %s", topic, group)
	return backend.GroupStats{}
}

// waitAttempts waits until the delivery record of group's message uuid on
// topic counts want attempts, for at most 10s.
func waitAttempts(t *testing.T, db *sql.DB, topic, group, uuid string, want int) {
	t.Helper()
	got := -1
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		err := db.QueryRow(`SELECT attempts FROM queue_delivery_attempts WHERE topic = $1 AND consumer_group = $2 AND message_uuid = $3`,
			topic, group, uuid).Scan(&got)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		if got == want {
			return
		}
	}
	t.Fatalf("attempts recorded for %s of %s on %s after 10s: got %d, want %d", uuid, group, topic, got, want)
}

// A handler that always outlives the ack deadline fails each attempt as
// its message's context runs out of time. The retry middleware counts
// those attempts and dead-letters the message once they are spent (the
// late ack of the dead-lettered delivery settles the redelivery the
// deadline caused), and the group goes on to the next message. Taken for
// withdrawn, such a failure handed the message out again for ever, and
// nothing behind it was delivered.
func TestAHandlerThatOutlivesTheAckDeadlineIsDeadLettered(t *testing.T) {
	cfg := fastConfig()
	cfg.AckDeadline = 300 * time.Millisecond
	b := openBackend(t, testDSN(t), cfg)
	topic := newTopic(t)
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	retries, err := retry.NewMiddleware(retry.Config{ConsumerGroup: "billing", DeadLetters: b.DeadLetters(), MaxAttempts: 2,
		InitialInterval: 10 * time.Millisecond, MaxInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	router.AddMiddleware(retries)
	var slowDeliveries atomic.Int64
	nextHandled := make(chan struct{})
	router.AddConsumerHandler("charge", topic, newSubscriber(t, b, "billing"), func(msg *message.Message) error {
		if msg.UUID == "next" {
			close(nextHandled)
			return nil
		}
		slowDeliveries.Add(1)
		<-msg.Context().Done()
		return fmt.Errorf("charge: %w", msg.Context().Err())
	})
	ctx, cancel := context.WithCancel(context.Background())
	routed := make(chan error, 1)
	go func() { routed <- router.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-routed; err != nil {
			t.Errorf("router: %v", err)
		}
	}()
	<-router.Running()

	publish(t, b, topic, message.NewMessage("slow", []byte("x")), message.NewMessage("next", []byte("y")))
	select {
	case <-nextHandled:
	case <-time.After(30 * time.Second):
		t.Fatalf("\"next\" not handled 30s on, after %d deliveries of \"slow\": the slow message comes back for ever", slowDeliveries.Load())
	}
	dls, err := b.DeadLetters().List(context.Background(), backend.DeadLetterFilter{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	// At least the two attempts; under load, a redelivery may overtake the
	// late ack of the dead-lettered one and run once more (refreshing the
	// dead letter), which at-least-once allows.
	if len(dls) != 1 || dls[0].MessageUUID != "slow" || dls[0].Attempts < 2 {
		t.Fatalf("dead letters: got %+v, want \"slow\" alone, after at least 2 attempts", dls)
	}
}
