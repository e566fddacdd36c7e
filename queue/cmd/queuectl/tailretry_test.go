package main

import (
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgconn"
)

// tail keeps following a PostgreSQL topic when its connection is dropped
// (pg_terminate_backend, a server restart): it reads again from where it
// was, printing nothing twice and skipping nothing.
func TestTailSurvivesADroppedConnection(t *testing.T) {
	dsn, b := openPostgres(t)
	pub := func(id string) {
		t.Helper()
		if err := b.Publisher().Publish("orders", message.NewMessage(id, []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	app := fmt.Sprintf("queuectl_tail_%d", time.Now().UnixNano())
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()

	pub("m1")
	out := startTail(t, "--queue-url", u.String(), "tail", "orders", "--from-start")
	if got := tailedUUIDs(t, waitForLines(t, out, 1)); got != "m1" {
		t.Fatalf("tail: got %s, want m1", got)
	}

	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var killed int
	if err := db.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("found no connection of the tail to terminate")
	}
	pub("m2")
	if got := tailedUUIDs(t, waitForLines(t, out, 2)); got != "m1,m2" {
		t.Fatalf("tail after its connection was terminated: got %s, want m1,m2", got)
	}
}

func TestTransientErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		{fmt.Errorf("tail orders: %w", &pgconn.PgError{Code: "08006"}), true},
		{&pgconn.PgError{Code: "53300"}, true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{&pgconn.PgError{Code: "28P01", Message: "password authentication failed"}, false},
		{&pgconn.PgError{Code: "42501", Message: "permission denied"}, false},
		{&pgconn.PgError{Code: "42P01", Message: "relation does not exist"}, false},
		{errors.New("not a queue: table queue_topics missing"), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
