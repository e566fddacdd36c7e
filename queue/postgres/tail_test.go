package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres"
)

// tailUntil follows topic from pos until it has read n messages, failing
// the test after 30s (a write transaction left open elsewhere on the server
// holds back what is readable, for tails and consumers alike).
func tailUntil(t *testing.T, b *postgres.Backend, topic string, pos postgres.TailPosition, n int) ([]backend.StoredMessage, postgres.TailPosition) {
	t.Helper()
	var got []backend.StoredMessage
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < n {
		msgs, next, err := b.ReadTail(context.Background(), topic, pos, 2)
		if err != nil {
			t.Fatalf("ReadTail: %v", err)
		}
		got, pos = append(got, msgs...), next
		if len(got) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tail of %s read %v in 30s, want %d messages", topic, uuids(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return got, pos
}

// tailNothing fails the test if the tail reads a message after pos within d.
func tailNothing(t *testing.T, b *postgres.Backend, topic string, pos postgres.TailPosition, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		msgs, _, err := b.ReadTail(context.Background(), topic, pos, 10)
		if err != nil {
			t.Fatalf("ReadTail: %v", err)
		}
		if len(msgs) > 0 {
			t.Fatalf("tail read %v, want nothing yet", uuids(msgs))
		}
	}
}

func uuids(msgs []backend.StoredMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.UUID
	}
	return out
}

func openSQL(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// insertInTx inserts a message into topic's table inside tx exactly as
// watermill-sql's publisher does (its default PostgreSQL schema's INSERT,
// pg_current_xact_id() as transaction_id) and returns its offset.
func insertInTx(t *testing.T, tx *sql.Tx, topic, uuid string) int64 {
	t.Helper()
	schema := wsql.DefaultPostgreSQLSchema{GeneratePayloadType: func(string) string { return "BYTEA" }}
	q, err := schema.InsertQuery(topic, message.Messages{message.NewMessage(uuid, []byte("payload of "+uuid))})
	if err != nil {
		t.Fatal(err)
	}
	var offset int64
	if err := tx.QueryRow(q.Query+` RETURNING "offset"`, q.Args...).Scan(&offset); err != nil {
		t.Fatalf("insert %s: %v", uuid, err)
	}
	return offset
}

func TestTailReadsStoredThenNewMessages(t *testing.T) {
	ctx := context.Background()
	b := openBackend(t, testDSN(t), fastConfig())
	topic := newTopic(t)

	// A topic without a table reads as empty, and the tail creates none.
	msgs, pos, err := b.ReadTail(ctx, topic, postgres.TailPosition{}, 10)
	if err != nil || len(msgs) != 0 || pos != (postgres.TailPosition{}) {
		t.Fatalf("tail of a topic never used: got %v at %+v (err %v), want nothing and no error", uuids(msgs), pos, err)
	}
	if topics, _ := b.Inspector().Topics(ctx); len(topics) != 0 {
		t.Errorf("topics after tailing an unused one: %v, want none", topics)
	}
	if _, _, err := b.ReadTail(ctx, "bad topic", postgres.TailPosition{}, 10); err == nil {
		t.Error("tail of an invalid topic name: got no error")
	}

	m1 := message.NewMessage("m1", []byte(`{"n":1}`))
	m1.Metadata.Set("type", "order.placed")
	publish(t, b, topic, m1, message.NewMessage("m2", []byte{0xff, 0x00}))
	before := time.Now()

	got, pos := tailUntil(t, b, topic, postgres.TailPosition{}, 2)
	if strings.Join(uuids(got), ",") != "m1,m2" {
		t.Fatalf("tail from the start: got %v, want m1,m2", uuids(got))
	}
	first := got[0]
	if first.Topic != topic || string(first.Payload) != `{"n":1}` || first.Metadata["type"] != "order.placed" || first.Offset <= 0 {
		t.Errorf("m1 read as %+v, want its topic, payload, metadata and offset", first)
	}
	if string(got[1].Payload) != "\xff\x00" {
		t.Errorf("m2 payload %q, want the bytes stored", got[1].Payload)
	}
	if age := before.Sub(first.CreatedAt); age < -5*time.Second || age > time.Minute {
		t.Errorf("m1 created at %s, %s before it was read; want the publish time", first.CreatedAt, age)
	}

	// From the end: only what is published afterwards.
	end, err := b.TailEnd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, topic, message.NewMessage("m3", nil))
	got, _ = tailUntil(t, b, topic, end, 1)
	if strings.Join(uuids(got), ",") != "m3" {
		t.Errorf("tail from the end: got %v, want m3 only", uuids(got))
	}
	// Following on from the last position: the new one, nothing twice.
	got, _ = tailUntil(t, b, topic, pos, 1)
	if strings.Join(uuids(got), ",") != "m3" {
		t.Errorf("tail following m2: got %v, want m3 only", uuids(got))
	}
}

// tailPastFirst opens a backend and a plain connection on a fresh
// database, publishes "first" on a new topic and tails it: the position
// after it is where the late-commit cases start.
func tailPastFirst(t *testing.T) (*postgres.Backend, *sql.DB, string, postgres.TailPosition) {
	t.Helper()
	dsn := testDSN(t)
	b := openBackend(t, dsn, fastConfig())
	db := openSQL(t, dsn)
	topic := newTopic(t)
	publish(t, b, topic, message.NewMessage("first", nil))
	got, pos := tailUntil(t, b, topic, postgres.TailPosition{}, 1)
	if got[0].UUID != "first" {
		t.Fatalf("got %v, want first", uuids(got))
	}
	return b, db, topic, pos
}

// A message whose transaction commits late must not be skipped by a tail
// that has already shown messages with higher offsets.
func TestTailDoesNotSkipALateCommit(t *testing.T) {
	t.Run("in flight with a lower offset", func(t *testing.T) {
		b, db, topic, pos := tailPastFirst(t)

		late, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = late.Rollback() }()
		lateOffset := insertInTx(t, late, topic, "late")
		publish(t, b, topic, message.NewMessage("after", nil))
		// "after" is committed with a higher offset, but the transaction
		// holding "late" is still open: neither may be shown yet.
		tailNothing(t, b, topic, pos, 300*time.Millisecond)
		if err := late.Commit(); err != nil {
			t.Fatal(err)
		}
		got, _ := tailUntil(t, b, topic, pos, 2)
		if strings.Join(uuids(got), ",") != "late,after" {
			t.Fatalf("after the late commit: got %v, want late,after", uuids(got))
		}
		if got[0].Offset != lateOffset || got[1].Offset <= lateOffset {
			t.Errorf("offsets: late %d, after %d; want late's lower", got[0].Offset, got[1].Offset)
		}
	})

	// The transaction with the lower transaction id inserts last: its
	// message (higher offset) becomes readable while the one with the lower
	// offset is still open. Following by offset alone, even with the
	// visibility rule, skips the lower offset for good.
	t.Run("higher offset readable first", func(t *testing.T) {
		b, db, topic, pos := tailPastFirst(t)

		early, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = early.Rollback() }()
		if _, err := early.Exec(`SELECT pg_current_xact_id()`); err != nil { // takes its transaction id now
			t.Fatal(err)
		}
		late, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = late.Rollback() }()
		lateOffset := insertInTx(t, late, topic, "late")
		earlyOffset := insertInTx(t, early, topic, "early")
		if err := early.Commit(); err != nil {
			t.Fatal(err)
		}
		if earlyOffset <= lateOffset {
			t.Fatalf("offsets: early %d, late %d; the test needs early's higher", earlyOffset, lateOffset)
		}
		got, pos := tailUntil(t, b, topic, pos, 1)
		if got[0].UUID != "early" {
			t.Fatalf("got %v, want early (its transaction id is below the open one's)", uuids(got))
		}
		if err := late.Commit(); err != nil {
			t.Fatal(err)
		}
		got, _ = tailUntil(t, b, topic, pos, 1)
		if got[0].UUID != "late" || got[0].Offset != lateOffset {
			t.Errorf("after the late commit: got %v, want late (offset %d)", uuids(got), lateOffset)
		}
	})
}

// groupState is what a consumer group has stored about a topic: its offset
// rows and its delivery records.
func groupState(t *testing.T, db *sql.DB, topic string) string {
	t.Helper()
	var sb strings.Builder
	for _, q := range []string{
		`SELECT consumer_group || ' ' || offset_acked || ' ' || last_processed_transaction_id::text FROM "watermill_offsets_` + topic + `" ORDER BY 1`,
		`SELECT concat_ws(' ', consumer_group, message_uuid, attempts, in_flight, delivered_at, first_failed_at, last_failed_at, last_error) FROM queue_delivery_attempts WHERE topic = '` + topic + `' ORDER BY 1`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("read group state: %v", err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&sb, s)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return sb.String()
}

// Tailing only reads: no consumer group's offset or delivery record
// changes, no group appears, and the group's consumer carries on.
func TestTailLeavesConsumerGroupsAlone(t *testing.T) {
	dsn := testDSN(t)
	b := openBackend(t, dsn, fastConfig())
	db := openSQL(t, dsn)
	topic := newTopic(t)

	publish(t, b, topic, message.NewMessage("m1", nil))
	ch := subscribe(t, newSubscriber(t, b, "billing"), topic)
	receive(t, ch).Ack()
	publish(t, b, topic, message.NewMessage("m2", nil), message.NewMessage("m3", nil))
	held := receive(t, ch) // m2, in flight
	if held.UUID != "m2" {
		t.Fatalf("got %s, want m2", held.UUID)
	}
	// Nothing is left to settle: m1's offset committed before m2 was
	// fetched, and m2's claim (which deleted m1's record) before it was
	// handed out.
	before := groupState(t, db, topic)
	if !strings.Contains(before, "billing") {
		t.Fatalf("group state %q, want billing's offset and m2's record", before)
	}
	got, _ := tailUntil(t, b, topic, postgres.TailPosition{}, 3)
	if strings.Join(uuids(got), ",") != "m1,m2,m3" {
		t.Fatalf("tail: got %v, want m1,m2,m3", uuids(got))
	}
	end, err := b.TailEnd(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tailNothing(t, b, topic, end, 100*time.Millisecond)
	if after := groupState(t, db, topic); after != before {
		t.Errorf("group state changed by tailing:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// The group's consumer goes on where it was: m2 is still its to ack,
	// m3 comes next, and nothing is delivered twice.
	held.Ack()
	if m := receive(t, ch); m.UUID != "m3" {
		t.Errorf("after tailing, billing got %s, want m3", m.UUID)
	} else {
		m.Ack()
	}
	expectNothing(t, ch, 300*time.Millisecond)
}

// A row its groups cannot read is shown by the tail, with what can be
// read of its metadata, between the messages around it: it ended the tail
// with an error, at every read from before it.
func TestTailShowsAnUnreadableRow(t *testing.T) {
	for _, tc := range unreadableRows {
		t.Run(tc.name, func(t *testing.T) {
			dsn := testDSN(t)
			b := openBackend(t, dsn, fastConfig())
			db := openSQL(t, dsn)
			topic := newTopic(t)
			publish(t, b, topic, message.NewMessage("before", []byte("b")))
			if tc.columnType != "" {
				if _, err := db.Exec(`ALTER TABLE "watermill_` + topic + `" ALTER COLUMN metadata TYPE ` + tc.columnType); err != nil {
					t.Fatal(err)
				}
			}
			insertRow(t, db, topic, tc.uuid, []byte("payload of bad"), tc.metadata)
			publish(t, b, topic, message.NewMessage("after", []byte("a")))

			got, _ := tailUntil(t, b, topic, postgres.TailPosition{}, 3)
			if want := []string{"before", tc.uuid, "after"}; !slices.Equal(uuids(got), want) {
				t.Fatalf("tail: got %q, want %q", uuids(got), want)
			}
			if !maps.Equal(got[1].Metadata, tc.readable) || string(got[1].Payload) != "payload of bad" {
				t.Errorf("tail of the unreadable row: got metadata %v, payload %q; want %v, %q", got[1].Metadata, got[1].Payload, tc.readable, "payload of bad")
			}
		})
	}
}
