package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/backend/backendtest"
)

// count runs a COUNT(*) query on b's file.
func count(t *testing.T, b *Backend, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := b.readDB.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// Dropping a group removes its subscription and its deliveries, on that
// topic only; the messages only it held go at the next collection, which
// a process that acks nothing now finds to do; its dead letters stay.
func TestDropGroupReleasesWhatOnlyItHeld(t *testing.T) {
	ctx := context.Background()
	// A GC batch of 2 makes the drop delete the 3 deliveries in two
	// transactions, the subscription with the last.
	b, err := Open(ctx, filepath.Join(t.TempDir(), "queue.db"), Config{GCInterval: time.Hour, GCBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	for _, s := range []subscribeOp{{"shared", "keep"}, {"shared", "gone"}, {"other", "gone"}} {
		mustSubmit(t, b, &s)
	}
	publishN(t, b, "shared", 3)
	publishN(t, b, "other", 2)
	ackAll(t, b, "shared", "keep", 1) // keep still needs the second and third
	now := time.Now()
	if err := b.DeadLetters().Put(ctx, backend.DeadLetter{MessageUUID: "d1", Topic: "shared", ConsumerGroup: "gone",
		Metadata: map[string]string{}, FirstFailedAt: now, LastFailedAt: now}); err != nil {
		t.Fatal(err)
	}

	// Before: the group that never acks holds every message back.
	gc := &gcOp{batch: 100, orphanBefore: b.nowMs() - time.Hour.Milliseconds()}
	mustSubmit(t, b, gc)
	if gc.deleted != 0 {
		t.Fatalf("collected before the drop: %d, want 0", gc.deleted)
	}
	if found, err := b.collectableWithoutAcks(ctx); err != nil || found {
		t.Fatalf("collectable before the drop: got %v (err %v), want false", found, err)
	}

	got, err := b.DropGroup(ctx, "shared", "gone")
	if err != nil {
		t.Fatal(err)
	}
	want := backend.DroppedGroup{Topic: "shared", ConsumerGroup: "gone", Pending: 3, DeadLetters: 1}
	if got != want {
		t.Errorf("DropGroup: got %+v, want %+v", got, want)
	}
	for _, c := range []struct {
		what  string
		query string
		args  []any
		want  int64
	}{
		{"subscriptions of shared/gone", `SELECT COUNT(*) FROM queue_subscriptions WHERE topic = ? AND consumer_group = ?`, []any{"shared", "gone"}, 0},
		{"deliveries of shared/gone", `SELECT COUNT(*) FROM queue_deliveries WHERE topic = ? AND consumer_group = ?`, []any{"shared", "gone"}, 0},
		{"subscriptions of shared/keep", `SELECT COUNT(*) FROM queue_subscriptions WHERE topic = ? AND consumer_group = ?`, []any{"shared", "keep"}, 1},
		{"deliveries of shared/keep", `SELECT COUNT(*) FROM queue_deliveries WHERE topic = ? AND consumer_group = ?`, []any{"shared", "keep"}, 2},
		{"subscriptions of other/gone", `SELECT COUNT(*) FROM queue_subscriptions WHERE topic = ? AND consumer_group = ?`, []any{"other", "gone"}, 1},
		{"deliveries of other/gone", `SELECT COUNT(*) FROM queue_deliveries WHERE topic = ? AND consumer_group = ?`, []any{"other", "gone"}, 2},
		{"dead letters of shared/gone", `SELECT COUNT(*) FROM queue_dead_letters WHERE topic = ? AND consumer_group = ?`, []any{"shared", "gone"}, 1},
	} {
		if n := count(t, b, c.query, c.args...); n != c.want {
			t.Errorf("%s after the drop: got %d, want %d", c.what, n, c.want)
		}
	}

	// An idle process finds the collection to do, and it deletes the one
	// message only the dropped group held.
	if found, err := b.collectableWithoutAcks(ctx); err != nil || !found {
		t.Errorf("collectable after the drop: got %v (err %v), want true", found, err)
	}
	gc = &gcOp{batch: 100, orphanBefore: b.nowMs() - time.Hour.Milliseconds()}
	mustSubmit(t, b, gc)
	if gc.deleted != 1 {
		t.Errorf("collected after the drop: %d, want 1 (the message keep acked)", gc.deleted)
	}
	for topic, want := range map[string]int64{"shared": 2, "other": 2} {
		if n := count(t, b, `SELECT COUNT(*) FROM queue_messages WHERE topic = ?`, topic); n != want {
			t.Errorf("messages left on %s: got %d, want %d", topic, n, want)
		}
	}
	stats, err := b.Inspector().Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		for _, g := range s.Groups {
			if s.Topic == "shared" && g.ConsumerGroup == "gone" {
				t.Errorf("stats still list shared/gone: %+v", g)
			}
		}
	}
}

// A topic whose last group is dropped is a topic nobody reads: its
// messages go once older than the orphan retention.
func TestDropLastGroupLeavesTheTopicToOrphanRetention(t *testing.T) {
	b := gcFixture(t)
	mustSubmit(t, b, &subscribeOp{"solo", "gone"})
	mustSubmit(t, b, &publishOp{topic: "solo", register: true, msgs: []storedMessage{{payload: []byte("x"), metadata: "{}"}}})
	if _, err := b.DropGroup(context.Background(), "solo", "gone"); err != nil {
		t.Fatal(err)
	}
	gc := &gcOp{batch: 100, orphanBefore: b.nowMs() - time.Hour.Milliseconds()}
	mustSubmit(t, b, gc)
	if gc.deleted != 0 {
		t.Errorf("collected a message younger than the orphan retention: %d, want 0", gc.deleted)
	}
	gc = &gcOp{batch: 100, orphanBefore: b.nowMs() + 1}
	mustSubmit(t, b, gc)
	if gc.deleted != 1 {
		t.Errorf("collected once past the orphan retention: %d, want 1", gc.deleted)
	}
}

// A group that subscribes again after its drop is a group new to the
// topic: it receives every message still stored.
func TestDroppedGroupSubscribingAgainStartsAnew(t *testing.T) {
	b := gcFixture(t)
	mustSubmit(t, b, &subscribeOp{"jobs", "g"})
	mustSubmit(t, b, &publishOp{topic: "jobs", register: true, msgs: []storedMessage{{payload: []byte("x"), metadata: "{}"}, {payload: []byte("y"), metadata: "{}"}}})
	ackAll(t, b, "jobs", "g", 1)
	if _, err := b.DropGroup(context.Background(), "jobs", "g"); err != nil {
		t.Fatal(err)
	}
	mustSubmit(t, b, &subscribeOp{"jobs", "g"})
	if n := count(t, b, `SELECT COUNT(*) FROM queue_deliveries WHERE topic = 'jobs' AND consumer_group = 'g'`); n != 2 {
		t.Errorf("deliveries after subscribing again: got %d, want 2 (both messages still stored)", n)
	}
}

// Nothing to drop is an error naming the topic and the group, and says
// which of the two is unknown; a bad topic name is refused.
func TestDropGroupErrors(t *testing.T) {
	ctx := context.Background()
	b := gcFixture(t)
	mustSubmit(t, b, &subscribeOp{"jobs", "g"})
	now := time.Now()
	if err := b.DeadLetters().Put(ctx, backend.DeadLetter{MessageUUID: "d1", Topic: "deadonly", ConsumerGroup: "g",
		Metadata: map[string]string{}, FirstFailedAt: now, LastFailedAt: now}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		topic, group string
		want         error
	}{
		{"nosuch", "g", backend.ErrUnknownTopic},
		{"jobs", "nosuch", backend.ErrUnknownGroup},
		{"deadonly", "g", backend.ErrUnknownGroup}, // known through its dead letters
	}
	for _, tt := range tests {
		backendtest.DropGroupRefused(t, b, tt.topic, tt.group, tt.want)
	}
	if _, err := b.DropGroup(ctx, "jobs", "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DropGroup(ctx, "jobs", "g"); !errors.Is(err, backend.ErrUnknownGroup) {
		t.Errorf("second drop: got %v, want %v", err, backend.ErrUnknownGroup)
	}
	for _, bad := range [][2]string{{"a b", "g"}, {"", "g"}, {"jobs", ""}} {
		_, err := b.DropGroup(ctx, bad[0], bad[1])
		if err == nil || errors.Is(err, backend.ErrUnknownTopic) || errors.Is(err, backend.ErrUnknownGroup) {
			t.Errorf("drop %q/%q: got %v, want a refusal of the name", bad[0], bad[1], err)
		}
	}
}
