package web

import (
	"database/sql"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/mattn/go-sqlite3"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres/pgtest"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// putDeadLetter publishes a message on topic (so that the topic exists)
// and stores it as a dead letter of group.
func putDeadLetter(t *testing.T, e *env, topic, group string, payload []byte) int64 {
	t.Helper()
	ctx := t.Context()
	msg := message.NewMessage(strconv.FormatInt(time.Now().UnixNano(), 10), payload)
	msg.Metadata.Set("type", "payment.PaymentCharged")
	if err := e.b.Publisher().Publish(topic, msg); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := e.b.DeadLetters().Put(ctx, backend.DeadLetter{
		MessageUUID: msg.UUID, Topic: topic, ConsumerGroup: group, Payload: payload, Metadata: map[string]string(msg.Metadata),
		Attempts: 2, LastError: "decode: malformed payload", FirstFailedAt: now, LastFailedAt: now, DeadAt: now,
	}); err != nil {
		t.Fatal(err)
	}
	dls, err := e.b.DeadLetters().List(ctx, backend.DeadLetterFilter{Topic: topic, ConsumerGroup: group})
	if err != nil {
		t.Fatal(err)
	}
	for _, dl := range dls {
		if dl.MessageUUID == msg.UUID {
			return dl.ID
		}
	}
	t.Fatalf("dead letter %s not stored", msg.UUID)
	return 0
}

func deadLetterCount(t *testing.T, e *env) int {
	t.Helper()
	dls, err := e.b.DeadLetters().List(t.Context(), backend.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(dls)
}

func TestReplayOne(t *testing.T) {
	e := newEnv(t)
	id := putDeadLetter(t, e, "payment.commands", "payment", []byte(`{"order_id":"o-1"}`))
	other := putDeadLetter(t, e, "payment.events", "order", []byte(`x`))
	c := newClient(t, e.srv)

	r := c.post("/queue/dlq/"+itoa(id)+"/replay", nil, true)
	if r.Code != http.StatusOK {
		t.Fatalf("replay: got %d, want 200\n%s", r.Code, abbreviate(r.Body))
	}
	mustContain(t, "replay", r.Body, "Dead letter "+itoa(id)+" replayed", `id="dlq"`, `data-dead-letter-id="`+itoa(other)+`"`)
	mustNotContain(t, "replay", r.Body, `data-dead-letter-id="`+itoa(id)+`"`)
	if r.Header.Get("HX-Trigger") != "dlq-changed" {
		t.Errorf("HX-Trigger: got %q, want dlq-changed", r.Header.Get("HX-Trigger"))
	}
	if got := deadLetterCount(t, e); got != 1 {
		t.Errorf("dead letters left: got %d, want 1", got)
	}

	r = c.post("/queue/dlq/"+itoa(id)+"/replay", nil, true)
	if r.Code != http.StatusNotFound {
		t.Fatalf("replay again: got %d, want 404", r.Code)
	}
	mustContain(t, "replay again", r.Body, "is gone (replayed or purged already)")

	if r := c.post("/queue/dlq/abc/replay", nil, false); r.Code != http.StatusNotFound {
		t.Errorf("replay id abc: got %d, want 404", r.Code)
	}
	if r := c.get("/queue/dlq/"+itoa(id), false); r.Code != http.StatusNotFound {
		t.Errorf("page of a replayed dead letter: got %d, want 404", r.Code)
	}

	r = c.post("/queue/dlq/"+itoa(other)+"/replay", nil, false)
	if r.Code != http.StatusSeeOther {
		t.Fatalf("replay without JavaScript: got %d, want 303", r.Code)
	}
	mustContain(t, "queue after replay", c.get("/queue", false).Body, "Dead letter "+itoa(other)+" replayed", `id="dlq-empty"`)
}

func TestReplayAllAndPurge(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		putDeadLetter(t, e, "inventory.commands", "inventory", []byte(`{}`))
	}
	c := newClient(t, e.srv)

	r := c.post("/queue/dlq/replay", nil, true)
	if r.Code != http.StatusOK {
		t.Fatalf("replay all: got %d, want 200", r.Code)
	}
	mustContain(t, "replay all", r.Body, "3 dead letters replayed.", `id="dlq-empty"`)
	mustContain(t, "replay all again", c.post("/queue/dlq/replay", nil, true).Body, "There was nothing to replay.")

	putDeadLetter(t, e, "inventory.commands", "inventory", []byte(`{}`))
	putDeadLetter(t, e, "shipping.commands", "shipping", []byte(`{}`))
	r = c.post("/queue/dlq/purge", nil, true)
	if r.Code != http.StatusUnprocessableEntity {
		t.Fatalf("purge unconfirmed: got %d, want 422", r.Code)
	}
	mustContain(t, "purge unconfirmed", r.Body, "Nothing purged: tick")
	if got := deadLetterCount(t, e); got != 2 {
		t.Fatalf("dead letters after an unconfirmed purge: got %d, want 2", got)
	}
	r = c.post("/queue/dlq/purge", url.Values{"confirm": {"yes"}}, true)
	if r.Code != http.StatusOK {
		t.Fatalf("purge: got %d, want 200", r.Code)
	}
	mustContain(t, "purge", r.Body, "2 dead letters purged.", `id="dlq-empty"`)
	if got := deadLetterCount(t, e); got != 0 {
		t.Errorf("dead letters after the purge: got %d, want 0", got)
	}
	r = c.post("/queue/dlq/purge", url.Values{"confirm": {"yes"}}, false)
	if r.Code != http.StatusSeeOther {
		t.Errorf("purge without JavaScript: got %d, want 303", r.Code)
	}
	r = c.post("/queue/dlq/purge", nil, false)
	if r.Code != http.StatusUnprocessableEntity {
		t.Errorf("unconfirmed purge without JavaScript: got %d, want 422", r.Code)
	}
	mustContain(t, "unconfirmed purge without JavaScript", r.Body, "<!doctype html>", "Nothing purged")
}

func TestQueueStats(t *testing.T) {
	e := newEnv(t)
	msg := message.NewMessage("m-1", []byte(`{}`))
	if err := e.b.Publisher().Publish("inventory.commands", msg); err != nil {
		t.Fatal(err)
	}
	sub, err := e.b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "inventory"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Subscribe(t.Context(), "inventory.commands"); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, e.srv)
	// The subscriber claimed m-1 (attempt 1) and holds it unhandled.
	waitForTopics(t, c, "one message waiting, at attempt 1", `data-topic="inventory.commands"`, `data-group="inventory"`,
		`data-depth="1"`, `data-max-attempt="1"`, `data-abandoned="0"`)

	// As a consumer that died while handling it leaves it. Closing, the
	// subscriber gives m-1 back without waiting for that to commit: wait
	// until it has (the claim no longer counts as an attempt), or it
	// would undo the update below.
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	waitForTopics(t, c, "m-1 given back", `data-depth="1"`, `data-max-attempt="0"`, `data-abandoned="0"`)
	db, err := sql.Open("sqlite3", "file:"+e.queuePath+"?_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE queue_deliveries SET in_flight = 1, visible_at = 0`); err != nil {
		t.Fatal(err)
	}
	waitForTopics(t, c, "m-1 abandoned", `data-depth="1"`, `data-abandoned="1"`)
}

// The Queue page shows each service's outbox backlog (its admin API's GET
// /outbox), and says so for a service it cannot ask, in the page and in
// its live region.
func TestQueuePageShowsTheOutboxes(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ShippingURL = deadURL(t) })
	e.admins[ServicePayment].mu.Lock()
	e.admins[ServicePayment].outbox = 3
	e.admins[ServicePayment].mu.Unlock()
	c := newClient(t, e.srv)
	for _, path := range []string{"/queue", "/queue/outboxes"} {
		r := c.get(path, path != "/queue")
		if r.Code != http.StatusOK {
			t.Fatalf("GET %s: got %d, want 200", path, r.Code)
		}
		for _, want := range []string{
			`data-service="order"`, `data-service="payment"`, `data-pending="3"`, `data-service="inventory"`,
			`data-service="shipping"`, `data-down`,
		} {
			if !strings.Contains(r.Body, want) {
				t.Errorf("GET %s: no %s in\n%s", path, want, r.Body)
			}
		}
		if n := strings.Count(r.Body, `data-pending="0"`); n != 2 {
			t.Errorf("GET %s: %d services with nothing pending, want 2 (order, inventory)", path, n)
		}
	}
}

// waitForTopics waits until the queue page holds every one of want: up to
// 30s, which only bounds a hang (a busy machine may take seconds).
func waitForTopics(t *testing.T, c *client, what string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := c.get("/queue/topics", true)
		if r.Code != http.StatusOK {
			t.Fatalf("topics: got %d, want 200", r.Code)
		}
		missing := slices.IndexFunc(want, func(w string) bool { return !strings.Contains(r.Body, w) })
		if missing < 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topics: not %s (no %s):\n%s", what, want[missing], r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestQueueStoreOpensLater(t *testing.T) {
	dir := t.TempDir()
	q := NewQueueStore("sqlite://" + dir + "/queue.db")
	t.Cleanup(func() { _ = q.Close() })
	if _, err := q.Stats(t.Context()); err == nil {
		t.Fatal("stats of a queue that does not exist yet: got no error")
	}
	// The services create the queue; the next request finds it.
	b, err := queue.OpenBackend(t.Context(), queue.Config{URL: "sqlite://" + dir + "/queue.db"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Publisher().Publish("order.events", message.NewMessage("m-1", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	st, err := q.Stats(t.Context())
	if err != nil || len(st) != 1 || st[0].Topic != "order.events" {
		t.Fatalf("stats once the queue exists: got %v %v, want order.events", st, err)
	}
}

// On PostgreSQL too the console only reads the queue: pointed at a schema
// that is not a queue (yet), it says so and creates nothing there (no
// tables, no owner lock, no clean-up of the services' messages).
func TestQueueStoreCreatesNothingOnPostgres(t *testing.T) {
	url := pgtest.SchemaURL(t, "console_test")
	q := NewQueueStore(url)
	t.Cleanup(func() { _ = q.Close() })
	if _, err := q.Stats(t.Context()); err == nil || !strings.Contains(err.Error(), "not a queue") {
		t.Fatalf("stats of a schema that is not a queue: got %v, want a \"not a queue\" error", err)
	}
	if tables := pgtest.Tables(t, url); tables != 0 {
		t.Errorf("tables in the schema after the console looked at it: got %d, want 0", tables)
	}
}

// The dead-letter list, polled every few seconds, shows a preview of each
// payload; the whole payload is on the dead letter's page.
func TestDeadLetterListShowsPayloadPreviews(t *testing.T) {
	e := newEnv(t)
	big := []byte(strings.Repeat("é", 1<<19)) // 1 MiB of two-byte characters
	id := putDeadLetter(t, e, "payment.events", "order", big)
	putDeadLetter(t, e, "payment.events", "order", []byte(`{"order_id":"o-1"}`))
	c := newClient(t, e.srv)
	for _, path := range []string{"/queue", "/queue/dlq"} {
		r := c.get(path, false)
		if len(r.Body) > 64<<10 {
			t.Errorf("%s: got %d bytes, want under 64 KiB (a preview of the 1 MiB payload)", path, len(r.Body))
		}
		mustContain(t, path, r.Body, "Cut: the first 512 of 1048576 bytes.", `<a href="/queue/dlq/`+itoa(id)+`">The whole payload</a>`,
			strings.Repeat("é", 256)+"…", "&#34;order_id&#34;: &#34;o-1&#34;")
	}
	r := c.get("/queue/dlq/"+itoa(id), false)
	if !strings.Contains(r.Body, string(big)) {
		t.Errorf("dead letter page: got %d bytes, want the whole payload", len(r.Body))
	}
}

// A dead letter's last error and metadata come from messages: their
// bidirectional formatting and control characters are shown escaped on
// its page and in the queue's list, not left to reorder the text.
func TestDeadLetterTextIsShownEscaped(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	msg := message.NewMessage("m-bidi", []byte(`{}`))
	msg.Metadata.Set("customer", "c\u202eevil")
	if err := e.b.Publisher().Publish("payment.commands", msg); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := e.b.DeadLetters().Put(ctx, backend.DeadLetter{
		MessageUUID: msg.UUID, Topic: "payment.commands", ConsumerGroup: "payment", Payload: msg.Payload, Metadata: map[string]string(msg.Metadata),
		Attempts: 1, LastError: "charge c\u202eevil: \x1b[31mfailed", FirstFailedAt: now, LastFailedAt: now, DeadAt: now,
	}); err != nil {
		t.Fatal(err)
	}
	dls, err := e.b.DeadLetters().List(ctx, backend.DeadLetterFilter{})
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters: got %d (%v), want 1", len(dls), err)
	}
	c := newClient(t, e.srv)
	for _, path := range []string{"/queue/dlq/" + itoa(dls[0].ID), "/queue"} {
		r := c.get(path, false)
		mustContain(t, path, r.Body, `charge c\u202eevil: \x1b[31mfailed`, `c\u202eevil`)
		mustNotContain(t, path, r.Body, "\u202e", "\x1b")
	}
}
