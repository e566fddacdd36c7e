package queue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres/pgtest"
	"github.com/orderflow/orderflow/queue/retry"
	"github.com/orderflow/orderflow/queue/tracing"
)

// openSQLite opens a queue on a fresh file; the queue is closed at cleanup.
func openSQLite(t *testing.T, path string) *queue.Queue {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Config{URL: "sqlite://" + path})
	if err != nil {
		t.Fatalf("open queue: %v", err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// everyBackend runs test once per backend on a queue URL of its own: a
// SQLite file, the in-process memory queue, and a PostgreSQL schema named
// after schemaPrefix (see pgtest: skipped without a server, failing in CI
// when the server does not answer).
func everyBackend(t *testing.T, schemaPrefix string, test func(t *testing.T, url string)) {
	t.Helper()
	urls := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "q.db") },
		"memory":   func(*testing.T) string { return "memory://" },
		"postgres": func(t *testing.T) string { return pgtest.SchemaURL(t, schemaPrefix) },
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) { test(t, url(t)) })
	}
}

// openURL opens the queue at url; it is closed at cleanup.
func openURL(t *testing.T, url string) *queue.Queue {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Config{URL: url})
	if err != nil {
		t.Fatalf("open queue %s: %v", url, err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// runRouter starts r and stops it at cleanup.
func runRouter(t *testing.T, r *queue.Router) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case <-time.After(10 * time.Second):
		t.Fatal("router did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
	})
}

func fastRetry(maxAttempts int) retry.Config {
	return retry.Config{MaxAttempts: maxAttempts, InitialInterval: 5 * time.Millisecond, MaxInterval: 20 * time.Millisecond}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func deadLetters(t *testing.T, q *queue.Queue) []backend.DeadLetter {
	t.Helper()
	dls, err := q.Backend().DeadLetters().List(context.Background(), backend.DeadLetterFilter{})
	if err != nil {
		t.Fatalf("list dead letters: %v", err)
	}
	return dls
}

func TestFailingMessageIsRetriedThenDeadLetteredWithItsHistory(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	q, err := queue.Open(context.Background(), queue.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "q.db"), TracerProvider: tp,
		SpanAttributes: map[string]string{"correlation_id": "order.id"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })

	var mu sync.Mutex
	var attempts []string
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "billing", Retry: fastRetry(3)})
	if err != nil {
		t.Fatal(err)
	}
	r.Handle("charge", "payments", func(msg *message.Message) error {
		mu.Lock()
		attempts = append(attempts, msg.Metadata.Get(backend.MetadataAttempt))
		mu.Unlock()
		return errors.New("gateway unavailable")
	})
	runRouter(t, r)

	msg := message.NewMessage("m-1", []byte(`{"order_id":"o-1"}`))
	msg.Metadata.Set("correlation_id", "o-1")
	if err := q.Publisher().Publish("payments", msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a dead letter", func() bool { return len(deadLetters(t, q)) == 1 })

	mu.Lock()
	if got, want := strings.Join(attempts, ","), "1,2,3"; got != want {
		t.Errorf("attempts seen by the handler: got %s, want %s", got, want)
	}
	mu.Unlock()
	dl := deadLetters(t, q)[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"uuid", dl.MessageUUID, "m-1"},
		{"topic", dl.Topic, "payments"},
		{"group", dl.ConsumerGroup, "billing"},
		{"attempts", dl.Attempts, 3},
		{"last error", dl.LastError, "gateway unavailable"},
		{"payload", string(dl.Payload), `{"order_id":"o-1"}`},
		{"correlation id kept", dl.Metadata["correlation_id"], "o-1"},
		{"reason", dl.Metadata[retry.MetadataDeadLetterReason], "max attempts"},
		{"trace context kept", dl.Metadata["traceparent"] != "", true},
		{"no attempt key", dl.Metadata[backend.MetadataAttempt], ""},
		{"first failure before last", !dl.FirstFailedAt.After(dl.LastFailedAt), true},
		{"first failure recorded", dl.FirstFailedAt.IsZero(), false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	waitFor(t, "the delivery to be acked", func() bool { return groupDepth(t, q, "payments", "billing") == 0 })

	// The consumer spans: retries as events, every attempt an error
	// whose error.type says what became of the message, and the order
	// id (SpanAttributes) on them and on the publish span.
	var retries, errorsSeen int
	var errorTypes []string
	for _, s := range rec.Ended() {
		attrs := map[string]string{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		if (s.Name() == "process payments" || s.Name() == "publish payments") && attrs["order.id"] != "o-1" {
			t.Errorf("%s: got order.id %q, want o-1 (SpanAttributes)", s.Name(), attrs["order.id"])
		}
		if s.Name() != "process payments" {
			continue
		}
		for _, e := range s.Events() {
			if e.Name == "retry" {
				retries++
			}
		}
		if s.Status().Code.String() == "Error" {
			errorsSeen++
		}
		errorTypes = append(errorTypes, attrs["error.type"])
	}
	if retries != 2 {
		t.Errorf("retry events: got %d, want 2", retries)
	}
	if errorsSeen != 3 {
		t.Errorf("consumer spans marked error: got %d, want 3", errorsSeen)
	}
	if got, want := strings.Join(errorTypes, ","), "transient,transient,max attempts"; got != want {
		t.Errorf("error.type of the attempts: got %s, want %s", got, want)
	}
}

// TestReplayedMessageIsTracedAsAReplayAndKeepsTheStampWhenDeadLetteredAgain
// replays a dead letter whose message fails again: the consumer span of
// the replay carries a replay event naming the dead letter and its reason
// (beside the dead_letter event of its own failure), and the new dead
// letter keeps the replay's stamp, with its own reason.
func TestReplayedMessageIsTracedAsAReplayAndKeepsTheStampWhenDeadLetteredAgain(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	q, err := queue.Open(context.Background(), queue.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "q.db"), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "billing", Retry: fastRetry(1)})
	if err != nil {
		t.Fatal(err)
	}
	r.Handle("charge", "payments", func(*message.Message) error { return errors.New("gateway unavailable") })
	runRouter(t, r)

	if err := q.Publisher().Publish("payments", message.NewMessage("m-1", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a dead letter", func() bool { return len(deadLetters(t, q)) == 1 })
	first := deadLetters(t, q)[0]
	firstID := strconv.FormatInt(first.ID, 10)
	if err := queue.ReplayDeadLetter(context.Background(), q.Backend(), first.ID); err != nil {
		t.Fatal(err)
	}
	var again backend.DeadLetter
	waitFor(t, "the replay to be dead-lettered again", func() bool {
		dls := deadLetters(t, q)
		if len(dls) == 1 && dls[0].Metadata[backend.MetadataReplayedFrom] == firstID {
			again = dls[0]
			return true
		}
		return false
	})
	if got := again.Metadata[backend.MetadataReplayedAt]; got == "" {
		t.Errorf("dead letter of the replay: no %s", backend.MetadataReplayedAt)
	}
	if got, want := again.Metadata[retry.MetadataDeadLetterReason], retry.ReasonMaxAttempts; got != want {
		t.Errorf("dead letter of the replay: reason %q, want %q", got, want)
	}
	waitFor(t, "the replay to be acked", func() bool { return groupDepth(t, q, "payments", "billing") == 0 })

	var replays []sdktrace.Event
	for _, s := range rec.Ended() {
		if s.Name() != "process payments" {
			continue
		}
		var replay, dead bool
		for _, e := range s.Events() {
			switch e.Name {
			case tracing.EventReplay:
				replay = true
				replays = append(replays, e)
			case tracing.EventDeadLetter:
				dead = true
			}
		}
		if !dead {
			t.Errorf("a consumer span without a dead_letter event (replay event: %v)", replay)
		}
	}
	if len(replays) != 1 {
		t.Fatalf("replay events: got %d, want 1 (on the replay's span only)", len(replays))
	}
	want := map[attribute.Key]string{
		tracing.ReplayDeadLetterIDKey: firstID,
		tracing.DeadLetterReasonKey:   retry.ReasonMaxAttempts,
		tracing.ReplayTimeKey:         again.Metadata[backend.MetadataReplayedAt],
	}
	for _, kv := range replays[0].Attributes {
		if w, ok := want[kv.Key]; ok {
			if got := kv.Value.Emit(); got != w {
				t.Errorf("replay event: %s = %s, want %s", kv.Key, got, w)
			}
			delete(want, kv.Key)
		}
	}
	if len(want) != 0 {
		t.Errorf("replay event: attributes %v missing", want)
	}
}

func groupDepth(t *testing.T, q *queue.Queue, topic, group string) int64 {
	t.Helper()
	stats, err := q.Backend().Inspector().Stats(context.Background())
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	for _, s := range stats {
		for _, g := range s.Groups {
			if s.Topic == topic && g.ConsumerGroup == group {
				return g.Depth
			}
		}
	}
	t.Fatalf("no stats for %s/%s", topic, group)
	return 0
}

func TestPoisonMessageIsDeadLetteredAtOnceWithoutBlockingTheOthers(t *testing.T) {
	q := openSQLite(t, filepath.Join(t.TempDir(), "q.db"))
	var mu sync.Mutex
	handled := map[string]int{}
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g", Retry: fastRetry(5)})
	if err != nil {
		t.Fatal(err)
	}
	r.Handle("h", "orders", func(msg *message.Message) error {
		if string(msg.Payload) == "\x00not json" {
			return queue.Permanent(errors.New("decode: invalid character"))
		}
		mu.Lock()
		handled[msg.UUID]++
		mu.Unlock()
		return nil
	})
	runRouter(t, r)

	msgs := []*message.Message{message.NewMessage("poison", []byte("\x00not json"))}
	for i := range 50 {
		msgs = append(msgs, message.NewMessage("good-"+string(rune('A'+i%26))+string(rune('a'+i/26)), []byte("{}")))
	}
	if err := q.Publisher().Publish("orders", msgs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all good messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(handled) == 50 })
	waitFor(t, "the poison message in the DLQ", func() bool { return len(deadLetters(t, q)) == 1 })
	dl := deadLetters(t, q)[0]
	if dl.MessageUUID != "poison" || dl.Attempts != 1 || dl.Metadata[retry.MetadataDeadLetterReason] != "permanent" {
		t.Errorf("dead letter: got uuid=%s attempts=%d reason=%s, want poison, 1, permanent", dl.MessageUUID, dl.Attempts, dl.Metadata[retry.MetadataDeadLetterReason])
	}
	for id, n := range handled {
		if n != 1 {
			t.Errorf("message %s handled %d times, want 1", id, n)
		}
	}
}

func TestAttemptCountSurvivesARestartOfTheConsumer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	seen := make(chan string, 10)
	start := func() (*queue.Queue, context.CancelFunc, chan error) {
		q, err := queue.Open(context.Background(), queue.Config{URL: "sqlite://" + path})
		if err != nil {
			t.Fatal(err)
		}
		r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g", Retry: retry.Config{MaxAttempts: 10, InitialInterval: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		r.Handle("h", "jobs", func(msg *message.Message) error {
			seen <- msg.Metadata.Get(backend.MetadataAttempt)
			return errors.New("still broken")
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		<-r.Running()
		return q, cancel, done
	}
	q, stop, done := start()
	if err := q.Publisher().Publish("jobs", message.NewMessage("job-1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got != "1" {
		t.Fatalf("first attempt: got %s, want 1", got)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	for len(seen) > 0 { // attempts that raced the stop
		<-seen
	}
	q2, stop2, done2 := start()
	defer func() { stop2(); <-done2; _ = q2.Close() }()
	got := <-seen
	if got == "1" || got == "" {
		t.Errorf("attempt after restart: got %q, want more than 1 (the count is persisted)", got)
	}
}

// Stats show the highest attempt among a group's messages not yet acked,
// the number an operator watches for a message redelivered again and
// again (docs/running.md: a handler that takes its process down).
func TestStatsShowTheHighestAttemptOfAGroup(t *testing.T) {
	urls := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "q.db") },
		"postgres": func(t *testing.T) string { return pgtest.SchemaURL(t, "stats_attempt") },
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			q := openURL(t, url(t))
			seen := make(chan string, 100)
			r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g", Retry: retry.Config{MaxAttempts: 100, InitialInterval: 20 * time.Millisecond, MaxInterval: 20 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			r.Handle("h", "jobs", func(msg *message.Message) error {
				if msg.UUID == "ok-1" {
					return nil
				}
				seen <- msg.Metadata.Get(backend.MetadataAttempt)
				return errors.New("still broken")
			})
			if err := q.Publisher().Publish("jobs", message.NewMessage("ok-1", []byte("x")), message.NewMessage("job-1", []byte("x"))); err != nil {
				t.Fatal(err)
			}
			runRouter(t, r)
			for got := ""; got != "3"; {
				select {
				case got = <-seen:
				case <-time.After(15 * time.Second):
					t.Fatal("no third attempt within 15s")
				}
			}
			waitFor(t, "stats showing attempt 3 or more", func() bool {
				stats, err := q.Backend().Inspector().Stats(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range stats {
					for _, g := range s.Groups {
						if s.Topic == "jobs" && g.ConsumerGroup == "g" {
							return g.MaxAttempt >= 3
						}
					}
				}
				return false
			})
		})
	}
}

func TestReplayedDeadLetterReachesOnlyItsGroupWithAttemptsReset(t *testing.T) {
	q := openSQLite(t, filepath.Join(t.TempDir(), "q.db"))
	var mu sync.Mutex
	fixed := false
	var billingAttempts []string
	var auditSeen int
	billing, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "billing", Retry: fastRetry(2)})
	if err != nil {
		t.Fatal(err)
	}
	billing.Handle("charge", "orders", func(msg *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		billingAttempts = append(billingAttempts, msg.Metadata.Get(backend.MetadataAttempt))
		if !fixed {
			return errors.New("bug")
		}
		return nil
	})
	audit, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	audit.Handle("audit", "orders", func(msg *message.Message) error {
		mu.Lock()
		auditSeen++
		mu.Unlock()
		return nil
	})
	runRouter(t, billing)
	runRouter(t, audit)

	if err := q.Publisher().Publish("orders", message.NewMessage("o-1", []byte("{}"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a dead letter", func() bool { return len(deadLetters(t, q)) == 1 })
	mu.Lock()
	fixed = true
	mu.Unlock()
	if err := queue.ReplayDeadLetter(context.Background(), q.Backend(), deadLetters(t, q)[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay to be handled", func() bool { mu.Lock(); defer mu.Unlock(); return len(billingAttempts) == 3 })
	waitFor(t, "the replay to be acked by both groups", func() bool {
		return groupDepth(t, q, "orders", "billing") == 0 && groupDepth(t, q, "orders", "audit") == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if got, want := strings.Join(billingAttempts, ","), "1,2,1"; got != want {
		t.Errorf("billing attempts: got %s, want %s (the replay starts again at 1)", got, want)
	}
	if auditSeen != 1 {
		t.Errorf("audit handled the message %d times, want 1 (a replay is for billing only)", auditSeen)
	}
	if n := len(deadLetters(t, q)); n != 0 {
		t.Errorf("dead letters after replay: got %d, want 0", n)
	}
}

func TestOpenRejectsBadURLsAndFilesClearly(t *testing.T) {
	dir := t.TempDir()
	notADB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notADB, []byte("hello, this is not a database file at all, really not"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, url, wantInErr string
	}{
		{"empty", "", "want sqlite://PATH, postgres://USER@HOST/DB or memory://"},
		{"no scheme", "data/queue.db", "want sqlite://PATH"},
		{"unknown scheme", "redis://localhost", `unsupported scheme "redis" (want sqlite, postgres or memory)`},
		{"no path", "sqlite://", "want sqlite://PATH"},
		{"directory", "sqlite://" + dir, "is a directory"},
		{"not a database", "sqlite://" + notADB, "not a SQLite database"},
		{"missing directory", "sqlite://" + filepath.Join(dir, "nope", "q.db"), "directory " + filepath.Join(dir, "nope") + " does not exist"},
		{"unknown parameter", "sqlite://" + filepath.Join(dir, "q.db") + "?lease_time=3s", `unknown parameter "lease_time"`},
		{"bad duration", "sqlite://" + filepath.Join(dir, "q.db") + "?lease=soon", `lease="soon"`},
		{"bad synchronous", "sqlite://" + filepath.Join(dir, "q.db") + "?synchronous=SOMETIMES", "synchronous must be"},
		{"unreachable postgres", "postgres://nobody@127.0.0.1:1/none?connect_timeout=2", "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := queue.Open(context.Background(), queue.Config{URL: tt.url})
			if err == nil {
				_ = q.Close()
				t.Fatalf("got no error, want one containing %q", tt.wantInErr)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantInErr)
			}
		})
	}
}

// ValidateURL refuses what Open would refuse before opening anything, and
// opens nothing: no file is created, no server is dialled.
func TestValidateURLOpensNothing(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "queue.db")
	for _, tt := range []struct{ url, wantInErr string }{
		{"sqlite://" + missing, ""},
		{"sqlite3://" + missing + "?synchronous=full&lease=5s&ack_delay=0s", ""},
		{"sqlite://" + missing + "?poll_min=100us", ""},
		{"sqlite://" + missing + "?lease=90s&ack_delay=20s", ""},
		{"sqlite://" + missing + "?poll_min=1us", "poll_min must be from 10µs to 16ms, got 1µs"},
		{"postgres://nobody@127.0.0.1:1/none?sslmode=disable", ""}, // nothing listens there: not dialled
		{"postgresql://nobody@127.0.0.1/none", ""},
		{"memory://", ""},

		{"", "want sqlite://PATH, postgres://USER@HOST/DB or memory://"},
		{"data/queue.db", "want sqlite://PATH"},
		{"redis://localhost", `unsupported scheme "redis"`},
		{"sqlite://", "want sqlite://PATH"},
		{"sqlite://" + missing + "?lease_time=3s", `unknown parameter "lease_time"`},
		{"sqlite://" + missing + "?lease=0s", "lease must be at least 10ms, got 0s"},
		// Each valid alone, not together with the default lease of 30s.
		{"sqlite://" + missing + "?ack_delay=20s", "ack delay must be at most a third of the lease (10s), got 20s"},
		{"sqlite://" + missing + "?synchronous=SOMETIMES", `synchronous must be NORMAL or FULL, got "SOMETIMES"`},
		{"postgres://nobody@127.0.0.1:port/none", "dsn is not a URL"},
		{"postgres://nobody@127.0.0.1/none?sslmode=sometimes", "sslmode"},
	} {
		err := queue.ValidateURL(tt.url)
		switch {
		case tt.wantInErr == "" && err != nil:
			t.Errorf("ValidateURL(%q) = %v, want nil", tt.url, err)
		case tt.wantInErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantInErr)):
			t.Errorf("ValidateURL(%q) = %v, want an error containing %q", tt.url, err, tt.wantInErr)
		}
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("after ValidateURL, %s holds %d entries (%v), want none", dir, len(entries), err)
	}
}

// Errors about a queue URL never show its password: they end up in logs
// and on the console's pages.
func TestURLErrorsHideThePassword(t *testing.T) {
	for _, raw := range []string{
		"bogus://u:s3cret@host/db",
		"postgres://u:s3cret@host:port/db",     // does not parse as a URL
		"postgres://u:se\"s3cret@host:port/db", // quoted by %q, escaped
		"postgres://u:s3cret@host/db?sslmode=sometimes",
		"u:s3cret@host/db",                                       // no scheme at all
		"postgres://u@host/db?password=s3cret&sslmode=sometimes", // libpq's password parameter
		"POSTGRES://u:s3cret@host/db?sslmode=sometimes",          // an upper-case scheme
	} {
		err := queue.ValidateURL(raw)
		if err == nil {
			t.Errorf("ValidateURL(%q) = nil, want an error", raw)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ValidateURL(%q) = %q: the password shows", raw, err)
		}
		if _, err := queue.OpenBackend(context.Background(), queue.Config{URL: raw}); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("OpenBackend(%q) = %v: want an error without the password", raw, err)
		}
	}
}

// ShownURL shows a SQLite URL as it is, since Open takes its path
// undecoded, and masks any other URL's password.
func TestShownURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sqlite:///tmp/x/with space/queue.db", "sqlite:///tmp/x/with space/queue.db"},
		{"sqlite:///tmp/100%/queue.db?lease=30s", "sqlite:///tmp/100%/queue.db?lease=30s"},
		{"SQLITE3://data/queue.db", "SQLITE3://data/queue.db"},
		{"postgres://u:s3cret@db:5432/queue", "postgres://u:xxxxx@db:5432/queue"},
		{"postgres://u@db/queue?password=s3cret&sslmode=disable", "postgres://u@db/queue?password=xxxxx&sslmode=disable"},
		{"postgres://u:s3cret@host:port/db", "postgres://…"}, // does not parse
		{"u:s3cret@host/db", "…"},
		{"host=db user=app password=s3cret dbname=orderflow", "…"}, // libpq key=value
		{"data/queue.db", "data/queue.db"},
		// A scheme without its slashes: the mistake is shown, not "…".
		{"sqlite:", "sqlite:"},
		{"sqlite:data/queue.db", "sqlite:data/queue.db"},
		{"postgres:", "postgres:"},
		{"postgres:u:s3cret@db/queue", "…"},
	} {
		if got := queue.ShownURL(tc.in); got != tc.want {
			t.Errorf("ShownURL(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIsInProcess(t *testing.T) {
	for url, want := range map[string]bool{
		"memory://":              true,
		"MEMORY://":              true, // schemes are case-insensitive
		"sqlite://data/queue.db": false,
		"postgres://u@h/db":      false,
		"not a queue URL at all": false,
	} {
		if got := queue.IsInProcess(url); got != want {
			t.Errorf("IsInProcess(%q) = %v, want %v", url, got, want)
		}
	}
}

func TestOddTopicNamesAreRejectedClearly(t *testing.T) {
	q := openSQLite(t, filepath.Join(t.TempDir(), "q.db"))
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	_ = r
	tests := []struct{ topic, wantInErr string }{
		{"", "empty"},
		{"orders; DROP TABLE x", `character ';'`},
		{"orders events", `character ' '`},
		{".hidden", `character '.'`},
		{"zamówienia", `character 'ó'`},
		{strings.Repeat("t", 46), "at most 45"},
	}
	for _, tt := range tests {
		err := q.Publisher().Publish(tt.topic, message.NewMessage("x", nil))
		if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
			t.Errorf("publish to %q: got %v, want an error containing %q", tt.topic, err, tt.wantInErr)
		}
		sub, _ := q.Backend().Subscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
		_, err = sub.Subscribe(context.Background(), tt.topic)
		if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
			t.Errorf("subscribe to %q: got %v, want an error containing %q", tt.topic, err, tt.wantInErr)
		}
		_ = sub.Close()
	}
	for _, ok := range []string{"orders", "order.events", "topic-1_x", "A"} {
		if err := q.Publisher().Publish(ok, message.NewMessage("x", nil)); err != nil {
			t.Errorf("publish to %q: got %v, want no error", ok, err)
		}
	}
}

// A message UUID some backend cannot store (PostgreSQL's column holds 36
// characters), or that an inbox could not tell from another (empty), is
// refused by every backend, so that what is published in development on
// SQLite is published in production on PostgreSQL.
func TestMessageUUIDsAreCheckedTheSameByEveryBackend(t *testing.T) {
	urls := map[string]string{
		"sqlite": "sqlite://" + filepath.Join(t.TempDir(), "q.db"),
		"memory": "memory://",
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			q, err := queue.Open(t.Context(), queue.Config{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = q.Close() })
			for _, uuid := range []string{"", strings.Repeat("u", backend.MaxUUIDLength+1)} {
				err := q.Publisher().Publish("orders", message.NewMessage("ok", nil), message.NewMessage(uuid, nil))
				if err == nil || !strings.Contains(err.Error(), "must have 1 to 36 characters") {
					t.Errorf("publish with uuid %q: got %v, want an error saying it must have 1 to 36 characters", uuid, err)
				}
			}
			for _, uuid := range []string{"u", strings.Repeat("u", backend.MaxUUIDLength), queue.NewMessageID()} {
				if err := q.Publisher().Publish("orders", message.NewMessage(uuid, nil)); err != nil {
					t.Errorf("publish with uuid %q: got %v, want no error", uuid, err)
				}
			}
		})
	}
}

// A retry config that cannot work is an error of NewRouter, not a panic
// (checked before its subscriber is opened); MaxInterval alone below the
// default initial interval is not such a config.
func TestNewRouterReportsABadRetryConfig(t *testing.T) {
	q := openSQLite(t, filepath.Join(t.TempDir(), "q.db"))
	_, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g", Retry: retry.Config{MaxAttempts: -1}})
	if err == nil || !strings.Contains(err.Error(), "max attempts") {
		t.Errorf("NewRouter with MaxAttempts -1: got %v, want an error about max attempts", err)
	}
	if _, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g", Retry: retry.Config{MaxInterval: 50 * time.Millisecond}}); err != nil {
		t.Errorf("NewRouter with MaxInterval 50ms: got %v, want no error", err)
	}
}

// Validate of Config and RouterConfig: what NewRouter and Open refuse
// before opening anything. Zero values other than the required ones take
// the defaults, so they are valid.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name      string
		validate  func() error
		wantInErr string // "" for no error
	}{
		{"sqlite", queue.Config{URL: "sqlite://data/queue.db"}.Validate, ""},
		{"sqlite3", queue.Config{URL: "sqlite3:///abs/queue.db?lease=10s"}.Validate, ""},
		{"postgres", queue.Config{URL: "postgres://app@db:5432/queue"}.Validate, ""},
		{"postgresql", queue.Config{URL: "postgresql://app@db/queue"}.Validate, ""},
		{"memory", queue.Config{URL: "memory://"}.Validate, ""},
		{"no URL", queue.Config{}.Validate, "want sqlite://PATH"},
		{"no scheme", queue.Config{URL: "data/queue.db"}.Validate, "want sqlite://PATH"},
		{"unknown scheme", queue.Config{URL: "redis://localhost"}.Validate, `unsupported scheme "redis"`},
		{"sqlite without a path", queue.Config{URL: "sqlite://?lease=10s"}.Validate, "no file path"},
		{"router: group only", queue.RouterConfig{ConsumerGroup: "g"}.Validate, ""},
		{"router: all set", queue.RouterConfig{ConsumerGroup: "g", Concurrency: 8, CloseTimeout: time.Second}.Validate, ""},
		{"router: no group", queue.RouterConfig{}.Validate, "consumer group is required"},
		{"router: negative concurrency", queue.RouterConfig{ConsumerGroup: "g", Concurrency: -1}.Validate, "concurrency must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.validate()
			switch {
			case tt.wantInErr == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.wantInErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantInErr)):
				t.Errorf("got %v, want an error containing %q", err, tt.wantInErr)
			}
		})
	}
}

// NewRouter refuses what RouterConfig.Validate refuses, before it opens a
// subscriber.
func TestNewRouterReportsAnInvalidConfig(t *testing.T) {
	q := openSQLite(t, filepath.Join(t.TempDir(), "q.db"))
	for _, cfg := range []queue.RouterConfig{{}, {ConsumerGroup: "g", Concurrency: -1}} {
		if r, err := q.NewRouter(cfg); err == nil {
			_ = r.Close()
			t.Errorf("NewRouter(%+v): got no error", cfg)
		} else if !strings.HasPrefix(err.Error(), "new router: ") {
			t.Errorf("NewRouter(%+v): got %q, want it prefixed %q", cfg, err, "new router: ")
		}
	}
}

// refailingBackend dead-letters every message it publishes again before
// Publish returns, as a consumer that fails on a replayed message at once
// would, between the replay's publish and its removal of the old entry.
type refailingBackend struct {
	backend.Backend
	group string
}

func (b refailingBackend) Publisher() message.Publisher { return refailingPublisher{b} }

type refailingPublisher struct{ b refailingBackend }

func (p refailingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.b.Backend.Publisher().Publish(topic, msgs...); err != nil {
		return err
	}
	for _, m := range msgs {
		err := p.b.DeadLetters().Put(context.Background(), backend.DeadLetter{
			MessageUUID: m.UUID, Topic: topic, ConsumerGroup: p.b.group, Payload: m.Payload,
			Metadata: map[string]string{}, Attempts: 1, LastError: "failed again after the replay",
			FirstFailedAt: time.Now(), LastFailedAt: time.Now(),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (refailingPublisher) Close() error { return nil }

func TestReplayedMessageThatFailsAgainBeforeTheReplayEndsStaysDeadLettered(t *testing.T) {
	everyBackend(t, "queue_replay", func(t *testing.T, url string) {
		ctx := context.Background()
		q := openURL(t, url)
		dls := q.Backend().DeadLetters()
		first := time.Now().Add(-time.Minute)
		if err := dls.Put(ctx, backend.DeadLetter{
			MessageUUID: "m-1", Topic: "orders", ConsumerGroup: "billing", Payload: []byte("not json"),
			Metadata: map[string]string{}, Attempts: 1, LastError: "unreadable",
			FirstFailedAt: first, LastFailedAt: first,
		}); err != nil {
			t.Fatal(err)
		}
		before := deadLetters(t, q)
		if len(before) != 1 {
			t.Fatalf("dead letters before the replay: got %d, want 1", len(before))
		}

		if err := queue.ReplayDeadLetter(ctx, refailingBackend{Backend: q.Backend(), group: "billing"}, before[0].ID); err != nil {
			t.Fatalf("replay: %v", err)
		}

		after := deadLetters(t, q)
		if len(after) != 1 {
			t.Fatalf("dead letters after a replay that failed again: got %d, want 1 (the message would be lost)", len(after))
		}
		if got, want := after[0].LastError, "failed again after the replay"; got != want {
			t.Errorf("last error: got %q, want %q", got, want)
		}
		if !after[0].DeadAt.After(before[0].DeadAt) {
			t.Errorf("dead at: got %v, want after %v", after[0].DeadAt, before[0].DeadAt)
		}
		if got := after[0].FirstFailedAt; got.UnixMilli() != first.UnixMilli() {
			t.Errorf("first failed at: got %v, want the first failure %v", got, first)
		}
	})
}

// TestReplayingAllEndsWhenReplayedMessagesFailAgain replays every dead
// letter through a backend whose consumers dead-letter each replayed
// message again at once: the replay must replay each entry once and end,
// not find the entries again and loop while they keep failing.
func TestReplayingAllEndsWhenReplayedMessagesFailAgain(t *testing.T) {
	everyBackend(t, "queue_replay_all", func(t *testing.T, url string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := openURL(t, url)
		const entries = 150 // more than one page of List
		for i := range entries {
			if err := q.Backend().DeadLetters().Put(ctx, backend.DeadLetter{
				MessageUUID: fmt.Sprintf("m-%d", i), Topic: "orders", ConsumerGroup: "billing",
				Metadata: map[string]string{}, Attempts: 1, LastError: "unreadable",
			}); err != nil {
				t.Fatal(err)
			}
		}

		for _, when := range []struct {
			name string
			b    backend.Backend
		}{
			// The old entry is refreshed under its ID before the
			// replay removes it...
			{"before the old entry is removed", refailingBackend{Backend: q.Backend(), group: "billing"}},
			// ...or the replay removed it and the failure makes a new
			// entry, under a new ID that the replay's listing reaches
			// later.
			{"after the old entry is removed", refailingAfterRemovalBackend{Backend: q.Backend(), group: "billing"}},
		} {
			replayed, err := queue.ReplayDeadLetters(ctx, when.b, backend.DeadLetterFilter{})
			if err != nil {
				t.Fatalf("%s: replay all: %v", when.name, err)
			}
			if replayed != entries {
				t.Errorf("%s: replayed: got %d, want %d (each entry once)", when.name, replayed, entries)
			}
			all, err := q.Backend().DeadLetters().List(ctx, backend.DeadLetterFilter{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != entries {
				t.Errorf("%s: dead letters after the replay: got %d, want %d (every message failed again)", when.name, len(all), entries)
			}
		}
	})
}

// A dead letter stored before every backend checked UUIDs (an empty one,
// or one longer than 36 characters, which SQLite took) is replayed under a
// new UUID, the old one in its metadata, instead of stopping a replay of
// all at that entry.
func TestADeadLetterWithAUUIDNoBackendTakesIsReplayedUnderANewOne(t *testing.T) {
	ctx := t.Context()
	q := openSQLite(t, filepath.Join(t.TempDir(), "q.db"))
	long := strings.Repeat("u", backend.MaxUUIDLength+1)
	for _, uuid := range []string{long, queue.NewMessageID()} {
		if err := q.Backend().DeadLetters().Put(ctx, backend.DeadLetter{
			MessageUUID: uuid, Topic: "orders", ConsumerGroup: "billing",
			Metadata: map[string]string{}, Attempts: 1, LastError: "failed",
		}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan *message.Message, 2)
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	r.Handle("billing", "orders", func(m *message.Message) error { got <- m; return nil })
	runRouter(t, r)

	replayed, err := queue.ReplayDeadLetters(ctx, q.Backend(), backend.DeadLetterFilter{})
	if err != nil || replayed != 2 {
		t.Fatalf("replay all: got %d, %v; want 2 replayed", replayed, err)
	}
	originals := map[string]bool{}
	for range 2 {
		select {
		case m := <-got:
			if err := backend.ValidateUUID(m.UUID); err != nil {
				t.Errorf("replayed message: %v", err)
			}
			originals[m.Metadata.Get(queue.MetadataOriginalUUID)] = true
		case <-time.After(10 * time.Second):
			t.Fatal("the replays were not handled within 10s")
		}
	}
	if !originals[long] || !originals[""] {
		t.Errorf("original_message_uuid of the replays: got %v, want the long UUID on one, none on the other", originals)
	}
}

// refailingAfterRemovalBackend dead-letters a replayed message again right
// after the replay removed its old entry: the store gives the new entry a
// new ID.
type refailingAfterRemovalBackend struct {
	backend.Backend
	group string
}

func (b refailingAfterRemovalBackend) DeadLetters() backend.DeadLetterStore {
	return refailingAfterRemovalStore{DeadLetterStore: b.Backend.DeadLetters(), group: b.group}
}

type refailingAfterRemovalStore struct {
	backend.DeadLetterStore
	group string
}

func (s refailingAfterRemovalStore) DeleteIfUnchanged(ctx context.Context, id int64, deadAt time.Time) (bool, error) {
	dl, err := s.Get(ctx, id)
	if err != nil {
		return false, err
	}
	removed, err := s.DeadLetterStore.DeleteIfUnchanged(ctx, id, deadAt)
	if err != nil || !removed {
		return removed, err
	}
	dl.ID, dl.DeadAt, dl.LastError = 0, time.Time{}, "failed again after the replay"
	return true, s.Put(ctx, dl)
}

// TestPanickingHandlerIsRetriedThenDeadLettered checks that a panic counts
// as a failed attempt: retried with backoff, then dead-lettered with the
// panic as its last error, not redelivered at once forever.
func TestPanickingHandlerIsRetriedThenDeadLettered(t *testing.T) {
	q := openSQLite(t, filepath.Join(t.TempDir(), "q.db"))
	var calls atomic.Int32
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "billing", Retry: fastRetry(3)})
	if err != nil {
		t.Fatal(err)
	}
	r.Handle("charge", "payments", func(*message.Message) error {
		calls.Add(1)
		panic("nil gateway")
	})
	runRouter(t, r)

	if err := q.Publisher().Publish("payments", message.NewMessage("m-1", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a dead letter", func() bool { return len(deadLetters(t, q)) == 1 })
	waitFor(t, "the delivery to be acked", func() bool { return groupDepth(t, q, "payments", "billing") == 0 })
	if got := calls.Load(); got != 3 {
		t.Errorf("handler calls: got %d, want 3 (MaxAttempts)", got)
	}
	dl := deadLetters(t, q)[0]
	if dl.Attempts != 3 || !strings.Contains(dl.LastError, "nil gateway") {
		t.Errorf("dead letter: got attempts %d, last error %q; want 3 and the panic's value", dl.Attempts, dl.LastError)
	}
}

// A handler error that quotes anything (a long non-ASCII text, bytes that
// are not UTF-8, NUL) is dead-lettered like any other, on every backend:
// PostgreSQL refused such text, and the message was then retried at once
// forever, holding up its group.
func TestDeadLetterKeepsAnyHandlerErrorText(t *testing.T) {
	// Invalid bytes and a NUL first; then the 4,000-byte cut falls inside
	// a two-byte character.
	text := "\xff\xfe \x00 x" + strings.Repeat("ü", 2100)
	everyBackend(t, "queue_error_text", func(t *testing.T, url string) {
		q := openURL(t, url)
		r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g", Retry: fastRetry(3)})
		if err != nil {
			t.Fatal(err)
		}
		var handled atomic.Int32
		r.Handle("h", "orders", func(msg *message.Message) error {
			if msg.UUID == "poison" {
				return queue.Permanent(errors.New("unexpected message type " + text))
			}
			handled.Add(1)
			return nil
		})
		runRouter(t, r)
		if err := q.Publisher().Publish("orders", message.NewMessage("poison", nil), message.NewMessage("next", nil)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the dead letter and the message behind it", func() bool { return len(deadLetters(t, q)) == 1 && handled.Load() == 1 })
		got := deadLetters(t, q)[0].LastError
		if !utf8.ValidString(got) || strings.ContainsRune(got, 0) || !strings.HasPrefix(got, "unexpected message type \uFFFD \uFFFD xüü") {
			t.Errorf("last error: got %d bytes starting %q (valid UTF-8 %v), want the error's text made storable",
				len(got), got[:min(40, len(got))], utf8.ValidString(got))
		}
	})
}

// A listing of dead letters holds the start of each payload, cut on a
// character boundary, with the whole size; one dead letter, and so its
// replay, the whole payload. Every backend alike.
func TestDeadLetterListHoldsPayloadPreviews(t *testing.T) {
	big := []byte("x" + strings.Repeat("é", 5000)) // 10,001 bytes; the preview's cut falls inside a character
	everyBackend(t, "queue_dlq_preview", func(t *testing.T, url string) {
		ctx := context.Background()
		q := openURL(t, url)
		dls := q.Backend().DeadLetters()
		for _, dl := range []backend.DeadLetter{
			{MessageUUID: "big", Topic: "orders", ConsumerGroup: "g", Payload: big, Attempts: 1, LastError: "e"},
			{MessageUUID: "small", Topic: "orders", ConsumerGroup: "g", Payload: []byte("{}"), Attempts: 1, LastError: "e"},
		} {
			if err := dls.Put(ctx, dl); err != nil {
				t.Fatal(err)
			}
		}
		list := deadLetters(t, q)
		if len(list) != 2 {
			t.Fatalf("list: got %d dead letters, want 2", len(list))
		}
		preview, small := list[0], list[1]
		if n := len(preview.Payload); n > backend.ListPayloadPreview || n < backend.ListPayloadPreview-3 || !utf8.Valid(preview.Payload) ||
			preview.PayloadSize != len(big) || !preview.PayloadCut() {
			t.Errorf("big in the list: got %d bytes (valid UTF-8 %v) of %d, cut %v, want the first ~%d bytes as text of %d",
				n, utf8.Valid(preview.Payload), preview.PayloadSize, preview.PayloadCut(), backend.ListPayloadPreview, len(big))
		}
		if string(small.Payload) != "{}" || small.PayloadSize != 2 || small.PayloadCut() {
			t.Errorf("small in the list: got %q of %d, cut %v, want {} of 2, whole", small.Payload, small.PayloadSize, small.PayloadCut())
		}
		whole, err := dls.Get(ctx, preview.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(whole.Payload, big) || whole.PayloadSize != len(big) || whole.PayloadCut() {
			t.Errorf("Get: got %d bytes of %d, cut %v, want the whole %d", len(whole.Payload), whole.PayloadSize, whole.PayloadCut(), len(big))
		}
		if _, err := dls.Get(ctx, 999_999); err == nil || err.Error() != "dead letter 999999: not found" {
			t.Errorf("Get of an unknown id: got %v, want \"dead letter 999999: not found\" on every backend", err)
		}
		if v := preview.View(); !v.PayloadCut || v.PayloadSize != len(big) || v.Payload == nil {
			t.Errorf("view of the preview: got cut %v size %d text %v, want cut, %d, text", v.PayloadCut, v.PayloadSize, v.Payload != nil, len(big))
		}
	})
}

// A topic nobody subscribes to has no groups: its stats hold an empty
// list, which JSON (queuectl --json stats, GET /queue/stats) shows as [],
// never null, on every backend.
func TestStatsOfATopicWithoutGroupsHoldAnEmptyGroupList(t *testing.T) {
	everyBackend(t, "stats_nogroups", func(t *testing.T, url string) {
		q := openURL(t, url)
		if err := q.Publisher().Publish("lonely.events", message.NewMessage("m-1", []byte("{}"))); err != nil {
			t.Fatalf("publish: %v", err)
		}
		stats, err := q.Backend().Inspector().Stats(context.Background())
		if err != nil {
			t.Fatalf("stats: %v", err)
		}
		for _, s := range stats {
			if s.Topic != "lonely.events" {
				continue
			}
			if s.Groups == nil {
				t.Errorf("lonely.events groups: got nil, want an empty list")
			}
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(`"groups":[]`)) {
				t.Errorf("lonely.events JSON: got %s, want \"groups\":[]", b)
			}
			return
		}
		t.Fatalf("stats: got %+v, want lonely.events among them", stats)
	})
}

// registerGroup registers group on topics, so that what is published to
// them waits for it.
func registerGroup(t *testing.T, q *queue.Queue, group string, topics ...string) {
	t.Helper()
	sub, err := q.Backend().Subscriber(backend.SubscriberConfig{ConsumerGroup: group})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, topic := range topics {
		if err := sub.(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil {
			t.Fatal(err)
		}
	}
}
