package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/queue/postgres"
)

// refuseWrites makes every INSERT or UPDATE of table (in the test's
// schema) fail with SQLSTATE code, as a server refusing writes would.
func refuseWrites(t *testing.T, db *sql.DB, table, code string) {
	t.Helper()
	if _, err := db.Exec(`CREATE OR REPLACE FUNCTION refuse_writes_` + code + `() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused (test)' USING ERRCODE = '` + code + `'; END $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE OR REPLACE TRIGGER refuse_writes BEFORE INSERT OR UPDATE ON ` + table + `
		FOR EACH ROW EXECUTE FUNCTION refuse_writes_` + code + `()`); err != nil {
		t.Fatal(err)
	}
}

// allowWrites undoes refuseWrites.
func allowWrites(t *testing.T, db *sql.DB, table string) {
	t.Helper()
	if _, err := db.Exec(`DROP TRIGGER refuse_writes ON ` + table); err != nil {
		t.Fatal(err)
	}
}

// A server that refuses writes while it still answers reads (here a
// trigger raising disk_full, as a full disk would) makes WriteHealth fail
// until a publish succeeds again; a statement's own failure (a raised
// unique_violation) leaves it healthy.
func TestWriteHealthReportsAServerThatRefusesWrites(t *testing.T) {
	dsn := testDSN(t)
	b := openBackend(t, dsn, fastConfig())
	db := openSQL(t, dsn)
	topic := newTopic(t)
	publish := func(uuid string) error {
		return b.Publisher().Publish(topic, message.NewMessage(uuid, []byte("x")))
	}
	if err := publish("m-1"); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteHealth(); err != nil {
		t.Fatalf("WriteHealth after a publish: got %v, want nil", err)
	}
	table := `"watermill_` + topic + `"`

	refuseWrites(t, db, table, "23505") // unique_violation: this statement's own failure
	if err := publish("m-2"); err == nil {
		t.Fatal("publish with a trigger raising unique_violation: got nil, want an error")
	}
	if err := b.WriteHealth(); err != nil {
		t.Errorf("WriteHealth after a unique_violation: got %v, want nil (the server takes writes)", err)
	}

	refuseWrites(t, db, table, "53100") // disk_full
	err := publish("m-3")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "53100" {
		t.Fatalf("publish with a trigger raising disk_full: got %v, want the server's 53100", err)
	}
	health := b.WriteHealth()
	if !errors.As(health, &pgErr) || pgErr.Code != "53100" || !strings.Contains(health.Error(), "writes failing since") {
		t.Errorf("WriteHealth after disk_full: got %v, want writes failing with the server's 53100", health)
	}
	if _, err := b.Inspector().Topics(t.Context()); err != nil {
		t.Errorf("reads while writes are refused: got %v, want them answered (what a ping-only check sees)", err)
	}

	allowWrites(t, db, table)
	if err := publish("m-4"); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteHealth(); err != nil {
		t.Errorf("WriteHealth after a publish succeeded again: got %v, want nil", err)
	}
}

func TestWriteRefused(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"disk full", &pgconn.PgError{Code: "53100"}, true},
		{"out of memory", &pgconn.PgError{Code: "53200"}, true},
		{"too many connections (pooled ones still write)", &pgconn.PgError{Code: "53300"}, false},
		{"data corrupted", &pgconn.PgError{Code: "XX001"}, true},
		{"I/O error", &pgconn.PgError{Code: "58030"}, true},
		{"read-only transaction (a standby)", &pgconn.PgError{Code: "25006"}, true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, false},
		{"query canceled", &pgconn.PgError{Code: "57014"}, false},
		{"other", errors.New("bad topic"), false},
		{"the caller gave up", fmt.Errorf("claim delivery: %w", &net.OpError{Op: "read", Err: context.Canceled}), false},
		{"no answer in time", fmt.Errorf("claim delivery: %w", context.DeadlineExceeded), true},
		{"connection ended mid-statement", fmt.Errorf("publish: %w", io.ErrUnexpectedEOF), true},
	}
	for _, tc := range tests {
		if got := postgres.WriteRefused(tc.err); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A process that only consumes learns of a server refusing writes too:
// every delivery is recorded (queue_delivery_attempts) before it is handed
// out, and that write failing makes WriteHealth fail until one succeeds.
func TestWriteHealthReportsRefusedDeliveryRecords(t *testing.T) {
	dsn := testDSN(t)
	producer := openBackend(t, dsn, fastConfig())
	consumer := openBackend(t, dsn, fastConfig())
	db := openSQL(t, dsn)
	topic := newTopic(t)
	msgs, err := newSubscriber(t, consumer, "workers").Subscribe(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	refuseWrites(t, db, "queue_delivery_attempts", "53100")
	if err := producer.Publisher().Publish(topic, message.NewMessage("m-1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var pgErr *pgconn.PgError
	for health := consumer.WriteHealth(); !errors.As(health, &pgErr) || pgErr.Code != "53100"; health = consumer.WriteHealth() {
		if time.Now().After(deadline) {
			t.Fatalf("consumer's WriteHealth while its delivery records are refused: got %v, want writes failing with 53100", health)
		}
		time.Sleep(10 * time.Millisecond)
	}

	allowWrites(t, db, "queue_delivery_attempts")
	select {
	case m := <-msgs:
		m.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("m-1 not delivered once the records were taken again")
	}
	if err := consumer.WriteHealth(); err != nil {
		t.Errorf("consumer's WriteHealth after a delivery was recorded: got %v, want nil", err)
	}
}

// No connection at all is a refused write, also when the connection
// attempt timed out (pgx wraps the context's deadline in a ConnectError).
func TestWriteRefusedWithoutAConnection(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close() // nothing listens there now
	for name, url := range map[string]string{
		"connection refused": "postgres://postgres@" + refusedAddr + "/test?sslmode=disable",
		"connect timeout":    "postgres://postgres@" + silent.Addr().String() + "/test?sslmode=disable&connect_timeout=1",
	} {
		_, err := pgconn.Connect(t.Context(), url)
		var connectErr *pgconn.ConnectError
		if !errors.As(err, &connectErr) {
			t.Fatalf("%s: got %v, want a *pgconn.ConnectError", name, err)
		}
		if !postgres.WriteRefused(err) {
			t.Errorf("%s: WriteRefused(%v) = false, want true", name, err)
		}
	}
}

// A publish that was under way when the server began refusing writes does
// not clear that failure when it completes: a success counts from when it
// began.
func TestAPublishThatBeganBeforeARefusalDoesNotClearIt(t *testing.T) {
	dsn := testDSN(t)
	b := openBackend(t, dsn, fastConfig())
	db := openSQL(t, dsn)
	slow, refusing := newTopic(t), newTopic(t)
	for _, topic := range []string{slow, refusing} { // tables made, topics registered
		if err := b.Publisher().Publish(topic, message.NewMessage("m-0", []byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	refuseWrites(t, db, `"watermill_`+refusing+`"`, "53100")

	lock, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.Exec(`LOCK TABLE "watermill_` + slow + `" IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() { published <- b.Publisher().Publish(slow, message.NewMessage("m-1", []byte("x"))) }()
	deadline := time.Now().Add(10 * time.Second)
	for waiting := 0; waiting == 0; {
		if err := db.QueryRow(`SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = '"watermill_` + slow + `"'::regclass`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the publish never waited for the table lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := b.Publisher().Publish(refusing, message.NewMessage("m-2", []byte("x"))); err == nil {
		t.Fatal("publish with a trigger raising disk_full: got nil, want an error")
	}
	if err := lock.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	var pgErr *pgconn.PgError
	if health := b.WriteHealth(); !errors.As(health, &pgErr) || pgErr.Code != "53100" {
		t.Errorf("WriteHealth after a publish that began before the refusal: got %v, want writes still failing with 53100", health)
	}
}
