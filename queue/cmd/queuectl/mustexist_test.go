package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/postgres/pgtest"
)

// Pointed at a PostgreSQL schema that is not a queue, queuectl says so and
// creates nothing there, as it refuses a SQLite file that is not a queue.
func TestPostgresSchemaThatIsNotAQueueIsRefused(t *testing.T) {
	url := pgtest.SchemaURL(t, "queuectl_test")
	for _, args := range [][]string{{"dlq", "list"}, {"stats"}, {"--json", "topics"}} {
		out, errOut, status := runMain(t, append([]string{"--queue-url", url}, args...)...)
		if status != 1 || !strings.Contains(errOut, "not a queue: table queue_topics missing") {
			t.Errorf("queuectl %s: exit status %d, stdout %q, stderr %q; want 1 and \"not a queue: table queue_topics missing\"", strings.Join(args, " "), status, out, errOut)
		}
	}
	if tables := pgtest.Tables(t, url); tables != 0 {
		t.Errorf("queuectl created %d tables in a schema that is not a queue", tables)
	}
}

// A role that may only read (here: every transaction read-only) can run
// the read commands on a queue.
func TestReadCommandsNeedNoWrites(t *testing.T) {
	dsn, b := openPostgres(t)
	if err := b.Publisher().Publish("orders", message.NewMessage("m1", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("default_transaction_read_only", "on")
	u.RawQuery = q.Encode()
	for _, args := range [][]string{{"stats"}, {"topics"}, {"dlq", "list"}, {"--json", "stats"}} {
		out, errOut, err := runCLI(t, append([]string{"--queue-url", u.String()}, args...)...)
		if err != nil {
			t.Errorf("queuectl %s as a read-only role: %v (stderr %q)", strings.Join(args, " "), err, errOut)
		}
		if args[0] == "topics" && !strings.Contains(out, "orders") {
			t.Errorf("queuectl topics: got %q, want orders", out)
		}
	}
}
