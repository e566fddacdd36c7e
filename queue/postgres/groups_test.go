package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/backend/backendtest"
	"github.com/orderflow/orderflow/queue/postgres"
)

// countRows runs a count(*) query on db.
func countRows(t *testing.T, db *sql.DB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// collectAll collects until want messages are gone or 10s have passed, and
// returns how many it collected.
func collectAll(t *testing.T, b *postgres.Backend, want int64) int64 {
	t.Helper()
	var total int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := b.CollectGarbage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if total >= want || time.Now().After(deadline) {
			return total
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Dropping a group removes its offset, which held every message after it
// back from collection, and its delivery records, on that topic only; the
// next collection deletes what the remaining group acked; its dead
// letters stay.
func TestDropGroupReleasesWhatOnlyItHeld(t *testing.T) {
	ctx := context.Background()
	dsn := testDSN(t)
	cfg := fastConfig()
	cfg.GCInterval = time.Hour // collections are the test's
	b := openBackend(t, dsn, cfg)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	topic, other := newTopic(t), newTopic(t)

	keep := subscribe(t, newSubscriber(t, b, "keep"), topic)
	// The group to drop: subscribed to both topics, it fails the first
	// message of topic once (a delivery record), then its service stops.
	goneSub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	goneCtx, stopGone := context.WithCancel(ctx)
	gone, err := goneSub.Subscribe(goneCtx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := goneSub.Subscribe(goneCtx, other); err != nil {
		t.Fatal(err)
	}
	var msgs []*message.Message
	for i := range 10 {
		msgs = append(msgs, message.NewMessage(fmt.Sprintf("m-%d", i), []byte("x")))
	}
	publish(t, b, topic, msgs...)
	publish(t, b, other, message.NewMessage("o-1", []byte("x")))
	receive(t, gone).Nack()
	stopGone()
	if err := goneSub.Close(); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		receive(t, keep).Ack()
	}
	waitGroupStats(t, b, topic, "keep", func(g backend.GroupStats) bool { return g.Depth == 0 && g.InFlight == 0 })
	if n := countRows(t, db, `SELECT count(*) FROM queue_delivery_attempts WHERE topic = $1 AND consumer_group = 'gone'`, topic); n == 0 {
		t.Fatal("the group to drop has no delivery record; the test needs one")
	}
	if n, err := b.CollectGarbage(ctx); err != nil || n != 0 {
		t.Fatalf("collect before the drop: got %d deleted (err %v), want 0", n, err)
	}
	now := time.Now()
	if err := b.DeadLetters().Put(ctx, backend.DeadLetter{MessageUUID: "d1", Topic: topic, ConsumerGroup: "gone",
		Metadata: map[string]string{}, FirstFailedAt: now, LastFailedAt: now}); err != nil {
		t.Fatal(err)
	}

	got, err := b.DropGroup(ctx, topic, "gone")
	if err != nil {
		t.Fatal(err)
	}
	want := backend.DroppedGroup{Topic: topic, ConsumerGroup: "gone", Pending: 10, DeadLetters: 1}
	if got != want {
		t.Errorf("DropGroup: got %+v, want %+v", got, want)
	}
	offsets := func(topic string) string { return `"watermill_offsets_` + topic + `"` }
	for _, c := range []struct {
		what  string
		query string
		args  []any
		want  int64
	}{
		{"offset of topic/gone", `SELECT count(*) FROM ` + offsets(topic) + ` WHERE consumer_group = 'gone'`, nil, 0},
		{"delivery records of topic/gone", `SELECT count(*) FROM queue_delivery_attempts WHERE topic = $1 AND consumer_group = 'gone'`, []any{topic}, 0},
		{"offset of topic/keep", `SELECT count(*) FROM ` + offsets(topic) + ` WHERE consumer_group = 'keep'`, nil, 1},
		{"offset of other/gone", `SELECT count(*) FROM ` + offsets(other) + ` WHERE consumer_group = 'gone'`, nil, 1},
		{"dead letters of topic/gone", `SELECT count(*) FROM queue_dead_letters WHERE topic = $1 AND consumer_group = 'gone'`, []any{topic}, 1},
	} {
		if n := countRows(t, db, c.query, c.args...); n != c.want {
			t.Errorf("%s after the drop: got %d, want %d", c.what, n, c.want)
		}
	}
	for _, g := range topicStats(t, b, topic).Groups {
		if g.ConsumerGroup == "gone" {
			t.Errorf("stats still list the dropped group: %+v", g)
		}
	}
	if n := collectAll(t, b, 10); n != 10 {
		t.Errorf("collected after the drop: %d, want 10", n)
	}
	if n := countRows(t, db, `SELECT count(*) FROM "watermill_`+other+`"`); n != 1 {
		t.Errorf("messages left on the other topic: %d, want 1", n)
	}
}

// A topic whose last group is dropped keeps its messages, as a topic
// nobody subscribed to yet does; a group subscribing again is new to the
// topic and receives them.
func TestDropLastGroupKeepsMessagesForTheNextGroup(t *testing.T) {
	ctx := context.Background()
	cfg := fastConfig()
	cfg.GCInterval = time.Hour
	b := openBackend(t, testDSN(t), cfg)
	topic := newTopic(t)
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	subCtx, stop := context.WithCancel(ctx)
	ch, err := sub.Subscribe(subCtx, topic)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, topic, message.NewMessage("m-1", []byte("x")))
	receive(t, ch).Ack()
	stop()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	publish(t, b, topic, message.NewMessage("m-2", []byte("x")))
	if _, err := b.DropGroup(ctx, topic, "g"); err != nil {
		t.Fatal(err)
	}
	if n, err := b.CollectGarbage(ctx); err != nil || n != 0 {
		t.Errorf("collect with no group left: got %d (err %v), want 0", n, err)
	}
	again := subscribe(t, newSubscriber(t, b, "g"), topic)
	for _, want := range []string{"m-1", "m-2"} {
		if m := receive(t, again); m.UUID != want {
			t.Errorf("subscribed again: got %s, want %s", m.UUID, want)
		} else {
			m.Ack()
		}
	}
}

// Nothing to drop is an error naming the topic and the group, and says
// which of the two is unknown; a bad topic name is refused.
func TestDropGroupErrors(t *testing.T) {
	ctx := context.Background()
	b := openBackend(t, testDSN(t), fastConfig())
	topic, published := newTopic(t), newTopic(t)
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	subCtx, stop := context.WithCancel(ctx)
	if _, err := sub.Subscribe(subCtx, topic); err != nil { // stores the group's offset
		t.Fatal(err)
	}
	stop()
	_ = sub.Close()
	publish(t, b, published, message.NewMessage("m-1", []byte("x"))) // a topic without groups
	tests := []struct {
		topic, group string
		want         error
	}{
		{"nosuch", "g", backend.ErrUnknownTopic},
		{topic, "nosuch", backend.ErrUnknownGroup},
		{published, "g", backend.ErrUnknownGroup},
	}
	for _, tt := range tests {
		backendtest.DropGroupRefused(t, b, tt.topic, tt.group, tt.want)
	}
	if _, err := b.DropGroup(ctx, topic, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DropGroup(ctx, topic, "g"); !errors.Is(err, backend.ErrUnknownGroup) {
		t.Errorf("second drop: got %v, want %v", err, backend.ErrUnknownGroup)
	}
	for _, bad := range [][2]string{{"a b", "g"}, {"", "g"}, {topic, ""}} {
		_, err := b.DropGroup(ctx, bad[0], bad[1])
		if err == nil || errors.Is(err, backend.ErrUnknownTopic) || errors.Is(err, backend.ErrUnknownGroup) {
			t.Errorf("drop %q/%q: got %v, want a refusal of the name", bad[0], bad[1], err)
		}
	}
}

// A consumer of the group still running when it is dropped (the drop does
// not wait for it while it handles nothing) gets nothing more; the group
// that subscribes again, as a restarted process does, gets what is stored.
func TestDroppedGroupStillRunningGetsNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := openBackend(t, testDSN(t), fastConfig())
	topic := newTopic(t)
	running := subscribe(t, newSubscriber(t, b, "g"), topic)
	publish(t, b, topic, message.NewMessage("m-1", []byte("x")))
	receive(t, running).Ack()
	if _, err := b.DropGroup(ctx, topic, "g"); err != nil {
		t.Fatal(err)
	}
	publish(t, b, topic, message.NewMessage("m-2", []byte("x")))
	expectNothing(t, running, 500*time.Millisecond)
	again := subscribe(t, newSubscriber(t, b, "g"), topic)
	if m := receive(t, again); m.UUID != "m-1" && m.UUID != "m-2" {
		t.Errorf("subscribed again: got %s, want a stored message", m.UUID)
	}
}
