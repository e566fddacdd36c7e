package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/retry"
)

// insertRow stores a message in topic's table (which must exist) as a
// writer other than this package's publisher might: plain SQL, the
// metadata given as text. It returns the row's offset.
func insertRow(t *testing.T, db *sql.DB, topic, uuid string, payload []byte, metadata string) int64 {
	t.Helper()
	var offset int64
	err := db.QueryRow(`INSERT INTO "watermill_`+topic+`" (uuid, payload, metadata, transaction_id)
		VALUES ($1, $2, $3, pg_current_xact_id()) RETURNING "offset"`, uuid, payload, metadata).Scan(&offset)
	if err != nil {
		t.Fatalf("insert %s: %v", uuid, err)
	}
	return offset
}

// lastErrorLogger keeps the last error logged through it or a logger it
// made (With), to tell why a consumer group is stuck.
type lastErrorLogger struct {
	watermill.NopLogger
	last *lastError
}

type lastError struct {
	mu   sync.Mutex
	text string
}

func (l *lastError) get() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.text
}

func (l *lastErrorLogger) Error(msg string, err error, fields watermill.LogFields) {
	l.last.mu.Lock()
	defer l.last.mu.Unlock()
	l.last.text = fmt.Sprintf("%s: %v", msg, err)
}

func (l *lastErrorLogger) With(watermill.LogFields) watermill.LoggerAdapter { return l }

// unreadableRows are rows that watermill-sql's subscriber cannot read
// (metadata that is not a JSON object of strings) or that no consumer
// could tell from another (no uuid), each with the entries of its
// metadata that can still be read.
var unreadableRows = []struct {
	name string
	uuid string
	// columnType, when set, is the type the metadata column is changed to
	// first: a table made by another writer need not keep watermill-sql's
	// JSON, which refuses text that is not JSON.
	columnType string
	metadata   string
	// readable are the entries a dead letter or a tail keeps.
	readable map[string]string
	// says is what the dead letter's last error must quote besides the
	// row's offset and table.
	says string
}{
	{name: "an array", uuid: "bad", metadata: `[1,2]`, readable: map[string]string{}, says: "metadata is not a JSON object of strings"},
	{name: "a number among strings", uuid: "bad", metadata: `{"a": 1, "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`,
		readable: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
	{name: "a nested object", uuid: "bad", metadata: `{"a": {"b": "c"}, "type": "order.placed"}`, readable: map[string]string{"type": "order.placed"}},
	{name: "a string", uuid: "bad", metadata: `"x"`, readable: map[string]string{}},
	{name: "text that is not JSON", uuid: "bad", columnType: "TEXT", metadata: `{"a":`, readable: map[string]string{}},
	{name: "no uuid", uuid: "", metadata: `{"type": "order.placed"}`, readable: map[string]string{"type": "order.placed"}, says: "message uuid"},
}

// A row whose metadata cannot be read blocked its consumer groups: the
// subscriber's poll failed on it, and on it again, for ever, and no
// message behind it was delivered. It is dead-lettered for each group
// instead, saying where it is and what is wrong with it, and each group
// goes on past it.
func TestAnUnreadableRowIsDeadLetteredAndItsGroupsGoOn(t *testing.T) {
	for _, tc := range unreadableRows {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := testDSN(t)
			cfg := fastConfig()
			logged := &lastErrorLogger{last: new(lastError)}
			cfg.Logger = logged
			b := openBackend(t, dsn, cfg)
			db := openSQL(t, dsn)
			topic := newTopic(t)
			publish(t, b, topic, message.NewMessage("before", []byte("b")))
			if tc.columnType != "" {
				if _, err := db.Exec(`ALTER TABLE "watermill_` + topic + `" ALTER COLUMN metadata TYPE ` + tc.columnType); err != nil {
					t.Fatal(err)
				}
			}
			offset := insertRow(t, db, topic, tc.uuid, []byte("payload of bad"), tc.metadata)
			wantUUID := tc.uuid
			if wantUUID == "" {
				wantUUID = fmt.Sprintf("%s@%d", topic, offset) // the dead letter needs one
			}
			publish(t, b, topic, message.NewMessage("after", []byte("a")))
			start := time.Now()

			groups := []string{"billing", "shipping"}
			for _, group := range groups {
				ch := subscribe(t, newSubscriber(t, b, group), topic)
				for _, want := range []string{"before", "after"} {
					select {
					case m := <-ch:
						assertDelivery(t, m, want, "1", "", false)
						m.Ack()
					case <-time.After(10 * time.Second):
						t.Fatalf("group %s got nothing within 10s, want %s; the last error logged: %s", group, want, logged.last.get())
					}
				}
				expectNothing(t, ch, 200*time.Millisecond)
				waitGroupStats(t, b, topic, group, func(g backend.GroupStats) bool { return g.Depth == 0 && g.InFlight == 0 })
			}

			dls, err := b.DeadLetters().List(ctx, backend.DeadLetterFilter{Topic: topic})
			if err != nil {
				t.Fatalf("list dead letters: %v", err)
			}
			if len(dls) != len(groups) {
				t.Fatalf("dead letters: got %d (%+v), want one for each of %v", len(dls), dls, groups)
			}
			for i, dl := range dls {
				if dl.ConsumerGroup != groups[i] || dl.MessageUUID != wantUUID || dl.Topic != topic {
					t.Errorf("dead letter %d: got %q of %s on %s, want %q of %s on %s", i, dl.MessageUUID, dl.ConsumerGroup, dl.Topic, wantUUID, groups[i], topic)
				}
				if got, want := string(dl.Payload), "payload of bad"; got != want {
					t.Errorf("dead letter of %s: payload %q, want %q", dl.ConsumerGroup, got, want)
				}
				if dl.Attempts != 1 {
					t.Errorf("dead letter of %s: attempts %d, want 1", dl.ConsumerGroup, dl.Attempts)
				}
				says := tc.says
				if says == "" {
					says = tc.metadata
				}
				for _, want := range []string{fmt.Sprintf("offset %d", offset), "watermill_" + topic, says} {
					if !strings.Contains(dl.LastError, want) {
						t.Errorf("dead letter of %s: last error %q, want it to say %q", dl.ConsumerGroup, dl.LastError, want)
					}
				}
				wantMetadata := maps.Clone(tc.readable)
				wantMetadata[retry.MetadataDeadLetterReason] = retry.ReasonUnreadable
				if !maps.Equal(dl.Metadata, wantMetadata) {
					t.Errorf("dead letter of %s: metadata %v, want %v", dl.ConsumerGroup, dl.Metadata, wantMetadata)
				}
				for what, at := range map[string]time.Time{"first failed at": dl.FirstFailedAt, "last failed at": dl.LastFailedAt} {
					if at.Before(start.Add(-5*time.Second)) || at.After(time.Now().Add(5*time.Second)) {
						t.Errorf("dead letter of %s: %s %v, want between %v and now", dl.ConsumerGroup, what, at, start)
					}
				}
				if _, err := b.DeadLetters().Get(ctx, dl.ID); err != nil {
					t.Errorf("get dead letter of %s: %v", dl.ConsumerGroup, err)
				}
			}

			// Every group is past the row: it is collected with the others.
			var collected int64
			for deadline := time.Now().Add(10 * time.Second); collected < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				n, err := b.CollectGarbage(ctx)
				if err != nil {
					t.Fatalf("collect: %v", err)
				}
				collected += n
			}
			if collected != 3 {
				t.Errorf("collected once every group is past the row: got %d, want 3", collected)
			}
		})
	}
}

// An unreadable row is acked only once its dead letter is stored: while
// the store refuses it, the row is tried again (each try counted) and
// nothing behind it is delivered; then it is dead-lettered with every
// attempt and its first failure, and the group goes on.
func TestAnUnreadableRowIsAckedOnlyOnceDeadLettered(t *testing.T) {
	ctx := context.Background()
	dsn := testDSN(t)
	cfg := fastConfig()
	cfg.RetryInterval = 50 * time.Millisecond
	b := openBackend(t, dsn, cfg)
	db := openSQL(t, dsn)
	topic := newTopic(t)
	publish(t, b, topic, message.NewMessage("before", nil))
	insertRow(t, db, topic, "bad", nil, `[1,2]`)
	publish(t, b, topic, message.NewMessage("after", nil))
	if _, err := db.Exec(`ALTER TABLE queue_dead_letters ADD CONSTRAINT refuse_all CHECK (false)`); err != nil {
		t.Fatal(err)
	}

	ch := subscribe(t, newSubscriber(t, b, "billing"), topic)
	m := receive(t, ch)
	assertDelivery(t, m, "before", "1", "", false)
	m.Ack()
	waitAttempts(t, db, topic, "billing", "bad", 3)
	expectNothing(t, ch, 100*time.Millisecond)

	if _, err := db.Exec(`ALTER TABLE queue_dead_letters DROP CONSTRAINT refuse_all`); err != nil {
		t.Fatal(err)
	}
	m = receive(t, ch)
	assertDelivery(t, m, "after", "1", "", false)
	m.Ack()
	dls, err := b.DeadLetters().List(ctx, backend.DeadLetterFilter{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].MessageUUID != "bad" || dls[0].Attempts < 3 {
		t.Fatalf("dead letters: got %+v, want bad alone, after at least 3 attempts", dls)
	}
	if !dls[0].FirstFailedAt.Before(dls[0].LastFailedAt) {
		t.Errorf("dead letter: first failed at %v, last at %v; want the first failure (a refused dead letter) before the last", dls[0].FirstFailedAt, dls[0].LastFailedAt)
	}
	if strings.Contains(dls[0].LastError, "dead-lettering failed") || !strings.Contains(dls[0].LastError, "[1,2]") {
		t.Errorf("dead letter: last error %q, want the row's own (not the refusal's)", dls[0].LastError)
	}
	waitGroupStats(t, b, topic, "billing", func(g backend.GroupStats) bool { return g.Depth == 0 && g.InFlight == 0 && g.Retrying == 0 })
}
