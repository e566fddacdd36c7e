package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/queue/postgres"
)

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
	refuse := func(code string) {
		t.Helper()
		if _, err := db.Exec(`CREATE OR REPLACE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'refused (test)' USING ERRCODE = '` + code + `'; END $$`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE OR REPLACE TRIGGER refuse_writes BEFORE INSERT ON "watermill_` + topic + `"
			FOR EACH ROW EXECUTE FUNCTION refuse_writes()`); err != nil {
			t.Fatal(err)
		}
	}

	refuse("23505") // unique_violation: this statement's own failure
	if err := publish("m-2"); err == nil {
		t.Fatal("publish with a trigger raising unique_violation: got nil, want an error")
	}
	if err := b.WriteHealth(); err != nil {
		t.Errorf("WriteHealth after a unique_violation: got %v, want nil (the server takes writes)", err)
	}

	refuse("53100") // disk_full
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

	if _, err := db.Exec(`DROP TRIGGER refuse_writes ON "watermill_` + topic + `"`); err != nil {
		t.Fatal(err)
	}
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
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"I/O error", &pgconn.PgError{Code: "58030"}, true},
		{"read-only transaction (a standby)", &pgconn.PgError{Code: "25006"}, true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, false},
		{"query canceled", &pgconn.PgError{Code: "57014"}, false},
		{"other", errors.New("bad topic"), false},
		{"cut short by its context", fmt.Errorf("claim delivery: %w", &net.OpError{Op: "read", Err: context.Canceled}), false},
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
	if _, err := db.Exec(`CREATE FUNCTION refuse_records() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused (test)' USING ERRCODE = '53100'; END $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TRIGGER refuse_records BEFORE INSERT OR UPDATE ON queue_delivery_attempts
		FOR EACH ROW EXECUTE FUNCTION refuse_records()`); err != nil {
		t.Fatal(err)
	}
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

	if _, err := db.Exec(`DROP TRIGGER refuse_records ON queue_delivery_attempts`); err != nil {
		t.Fatal(err)
	}
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
