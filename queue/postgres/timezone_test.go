package postgres_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres"
)

// created_at is a timestamp without time zone filled in the publisher's
// session: a publisher and a reader whose sessions are in far-apart zones
// (PGTZ, ?timezone=) must still agree on when a message was published.
func TestTimesDoNotDependOnTheSessionTimeZone(t *testing.T) {
	dsn := testDSN(t)
	t.Setenv("PGTZ", "America/Los_Angeles") // UTC-8 or -7
	publisher := openBackend(t, dsn, fastConfig())

	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("timezone", "Asia/Tokyo") // UTC+9, overrides PGTZ
	u.RawQuery = q.Encode()
	reader := openBackend(t, u.String(), fastConfig())

	topic := newTopic(t)
	publishedAt := time.Now()
	publish(t, publisher, topic, message.NewMessage("m1", []byte("{}")))

	// What the tail can read shows a moment after the commit (see tailUntil).
	msgs, _ := tailUntil(t, reader, topic, postgres.TailPosition{}, 1)
	if len(msgs) != 1 {
		t.Fatalf("ReadTail: got %d messages (%v); want 1", len(msgs), uuids(msgs))
	}
	if d := msgs[0].CreatedAt.Sub(publishedAt); d < -time.Minute || d > time.Minute {
		t.Errorf("tail: created at %s, published at %s: off by %s", msgs[0].CreatedAt, publishedAt.UTC(), d)
	}

	// Stats counts the age only for a group whose offsets row exists.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := newSubscriber(t, publisher, "slow")
	if _, err := sub.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	// The subscription registers its offsets row soon after Subscribe.
	var stats []backend.TopicStats
	seen := false
	for wait := time.Now().Add(30 * time.Second); !seen && time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
		if stats, err = reader.Inspector().Stats(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, ts := range stats {
			for _, g := range ts.Groups {
				if ts.Topic != topic || g.Depth == 0 {
					continue
				}
				seen = true
				if g.OldestAge > time.Minute {
					t.Errorf("stats: group %s: oldest age %s for a message published just now", g.ConsumerGroup, g.OldestAge)
				}
			}
		}
	}
	cancel()
	if !seen {
		t.Fatalf("stats: no group of %s with the message pending: %+v", topic, stats)
	}
}
