package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres/pgtest"
)

// openPostgres returns the URL of a fresh schema on the test server (the
// test is skipped when ORDERFLOW_TEST_POSTGRES_URL is unset and fails when
// it is set but the server does not answer) and a backend on it.
func openPostgres(t *testing.T) (string, backend.Backend) {
	t.Helper()
	url := pgtest.SchemaURL(t, "queuectl_test")
	b, err := queue.OpenBackend(context.Background(), queue.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return url, b
}

// startTail runs queuectl tail --json in the background until the test
// ends and returns its output.
func startTail(t *testing.T, args ...string) *lockedBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{b: new(strings.Builder)}
	errOut := &lockedBuffer{b: new(strings.Builder)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append(args, "--json", "--interval", "10ms"), out, errOut) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("queuectl %s: got %v (stderr %q), want nil after Ctrl-C", strings.Join(args, " "), err, errOut.String())
		}
	})
	return out
}

// tailedUUIDs decodes tail --json lines and returns their UUIDs.
func tailedUUIDs(t *testing.T, lines []string) string {
	t.Helper()
	var ids []string
	for _, l := range lines {
		var m struct {
			UUID    string  `json:"uuid"`
			Payload *string `json:"payload"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("tail --json line %q: %v", l, err)
		}
		ids = append(ids, m.UUID)
	}
	return strings.Join(ids, ",")
}

func TestTailOnPostgreSQL(t *testing.T) {
	url, b := openPostgres(t)
	pub := func(topic string, uuids ...string) {
		t.Helper()
		var msgs []*message.Message
		for _, u := range uuids {
			msgs = append(msgs, message.NewMessage(u, []byte(`{"id":"`+u+`"}`)))
		}
		if err := b.Publisher().Publish(topic, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	pub("orders", "m1", "m2")
	pub("payments", "old")

	// --from-start prints what is stored, then follows.
	fromStart := startTail(t, "--queue-url", url, "tail", "orders", "--from-start")
	if got := tailedUUIDs(t, waitForLines(t, fromStart, 2)); got != "m1,m2" {
		t.Fatalf("tail --from-start: got %s, want m1,m2", got)
	}
	pub("orders", "m3")
	if got := tailedUUIDs(t, waitForLines(t, fromStart, 3)); got != "m1,m2,m3" {
		t.Fatalf("tail --from-start after a publish: got %s, want m1,m2,m3", got)
	}

	// Without --from-start, only what is published once it runs: publish
	// until it prints something, and it must never print "old".
	fromNow := startTail(t, "--queue-url", url, "tail", "payments")
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; fromNow.String() == ""; i++ {
		if time.Now().After(deadline) {
			t.Fatal("tail printed nothing in 30s")
		}
		pub("payments", fmt.Sprintf("new-%d", i))
		time.Sleep(50 * time.Millisecond)
	}
	if got := tailedUUIDs(t, waitForLines(t, fromNow, 1)); !strings.HasPrefix(got, "new-") || strings.Contains(got, "old") {
		t.Errorf("tail: got %s, want only messages published after it started", got)
	}

	// A transaction that took its id first publishes "early" with a higher
	// offset than "late", whose transaction is still open: "early" is shown
	// first, and "late" must still be shown once it commits.
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	early, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = early.Rollback() }()
	if _, err := early.Exec(`SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	late, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = late.Rollback() }()
	lateOffset := insertInTx(t, late, "orders", "late")
	if earlyOffset := insertInTx(t, early, "orders", "early"); earlyOffset <= lateOffset {
		t.Fatalf("offsets: early %d, late %d; the test needs early's higher", earlyOffset, lateOffset)
	}
	if err := early.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := tailedUUIDs(t, waitForLines(t, fromStart, 4)); got != "m1,m2,m3,early" {
		t.Fatalf("tail --from-start: got %s, want m1,m2,m3,early", got)
	}
	if err := late.Commit(); err != nil {
		t.Fatal(err)
	}
	pub("orders", "m4")
	if got := tailedUUIDs(t, waitForLines(t, fromStart, 6)); got != "m1,m2,m3,early,late,m4" {
		t.Errorf("tail --from-start: got %s, want m1,m2,m3,early,late,m4", got)
	}
}

// insertInTx inserts a message inside tx exactly as watermill-sql's
// publisher does and returns its offset.
func insertInTx(t *testing.T, tx *sql.Tx, topic, uuid string) int64 {
	t.Helper()
	schema := wsql.DefaultPostgreSQLSchema{GeneratePayloadType: func(string) string { return "BYTEA" }}
	q, err := schema.InsertQuery(topic, message.Messages{message.NewMessage(uuid, []byte(`{}`))})
	if err != nil {
		t.Fatal(err)
	}
	var offset int64
	if err := tx.QueryRow(q.Query+` RETURNING "offset"`, q.Args...).Scan(&offset); err != nil {
		t.Fatalf("insert %s: %v", uuid, err)
	}
	return offset
}
