package postgres_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
)

// The names in queue_topics become part of table names in the statistics'
// and the collection's statements. A name that is no valid topic (another
// writer put it there: the table is the database's) is left out, as a
// caller's would be refused, and does not stop the statistics or the
// collection of the other topics.
func TestStoredTopicNamesAreValidatedBeforeUse(t *testing.T) {
	ctx := context.Background()
	dsn := testDSN(t)
	b := openBackend(t, dsn, fastConfig())
	db := openSQL(t, dsn)
	topic := newTopic(t)
	publish(t, b, topic, message.NewMessage("m1", nil), message.NewMessage("m2", nil))
	ch := subscribe(t, newSubscriber(t, b, "billing"), topic)
	receive(t, ch).Ack()
	receive(t, ch).Ack()
	waitGroupStats(t, b, topic, "billing", func(g backend.GroupStats) bool { return g.Depth == 0 && g.InFlight == 0 })

	bad := []string{
		`a"b`,
		`0"; DROP TABLE queue_dead_letters; --`,
		"a b",
		"",
		strings.Repeat("a", backend.MaxTopicLength+1),
	}
	for _, name := range bad {
		if _, err := db.Exec(`INSERT INTO queue_topics (topic) VALUES ($1)`, name); err != nil {
			t.Fatalf("register %q: %v", name, err)
		}
	}

	topics, err := b.Inspector().Topics(ctx)
	if err != nil {
		t.Fatalf("Topics: %v", err)
	}
	if want := []string{topic}; !slices.Equal(topics, want) {
		t.Errorf("Topics: got %q, want %q", topics, want)
	}
	stats, err := b.Inspector().Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if len(stats) != 1 || stats[0].Topic != topic {
		t.Errorf("Stats: got %+v, want %s alone", stats, topic)
	}
	var collected int64
	for deadline := time.Now().Add(10 * time.Second); collected < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n, err := b.CollectGarbage(ctx)
		if err != nil {
			t.Fatalf("collect: %v", err)
		}
		collected += n
	}
	if collected != 2 {
		t.Errorf("collected: got %d, want 2", collected)
	}
	if _, err := b.DeadLetters().List(ctx, backend.DeadLetterFilter{}); err != nil {
		t.Errorf("list dead letters: %v", err)
	}
}
