package queue_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/retry"
)

// record is one record a recordingLogger got.
type record struct {
	level   slog.Level
	msg     string
	traceID string // of the span in the record's context; "" without one
	fields  watermill.LogFields
}

// recordingLogger is a retry.ContextLogger that keeps every record,
// with the trace id of the context it was written with.
type recordingLogger struct {
	mu      *sync.Mutex
	records *[]record
	fields  watermill.LogFields
}

func newRecordingLogger() recordingLogger {
	return recordingLogger{mu: new(sync.Mutex), records: new([]record)}
}

var _ retry.ContextLogger = recordingLogger{}

func (l recordingLogger) add(ctx context.Context, level slog.Level, msg string, fields watermill.LogFields) {
	r := record{level: level, msg: msg, fields: l.fields.Add(fields)}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.traceID = sc.TraceID().String()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.records = append(*l.records, r)
}

func (l recordingLogger) LogContext(ctx context.Context, level slog.Level, msg string, fields watermill.LogFields) {
	l.add(ctx, level, msg, fields)
}

func (l recordingLogger) Error(msg string, err error, fields watermill.LogFields) {
	l.add(context.Background(), slog.LevelError, msg, fields.Add(watermill.LogFields{"error": err}))
}

func (l recordingLogger) Info(msg string, fields watermill.LogFields) {
	l.add(context.Background(), slog.LevelInfo, msg, fields)
}

func (l recordingLogger) Debug(msg string, fields watermill.LogFields) {
	l.add(context.Background(), slog.LevelDebug, msg, fields)
}

func (l recordingLogger) Trace(msg string, fields watermill.LogFields) {
	l.add(context.Background(), watermill.LevelTrace, msg, fields)
}

func (l recordingLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return recordingLogger{mu: l.mu, records: l.records, fields: l.fields.Add(fields)}
}

// about returns the records that name message id (Watermill's name
// their message_uuid).
func (l recordingLogger) about(id string) []record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []record
	for _, r := range *l.records {
		if r.fields["message_id"] == id || r.fields["message_uuid"] == id {
			out = append(out, r)
		}
	}
	return out
}

func (r record) String() string {
	return fmt.Sprintf("%s %q trace=%q %v", r.level, r.msg, r.traceID, r.fields)
}

// The records of a message's failed attempts and of its dead letter, for
// a handler's error or for runs abandoned by crashes, are written with
// the message's context (so they carry its trace id) and its order id; an
// attempt that will be retried is a warning, not an error; and Watermill
// router's own record of each failure, which it writes at error level for
// every attempt, is a debug record.
func TestRetriesAndDeadLettersAreLoggedWithTheMessagesTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	logs := newRecordingLogger()
	tp := sdktrace.NewTracerProvider()
	q, err := queue.Open(context.Background(), queue.Config{URL: "sqlite://" + path, Logger: logs, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	registerGroup(t, q, "billing", "payments")
	failing := message.NewMessage("failing", nil)
	failing.Metadata.Set("correlation_id", "o-1")
	culprit := message.NewMessage("culprit", nil)
	culprit.Metadata.Set("correlation_id", "o-2")
	if err := q.Publisher().Publish("payments", failing, culprit); err != nil {
		t.Fatal(err)
	}
	// As a consumer that died left it: in its second run alone, so that
	// the next delivery dead-letters it unhandled (reason abandoned).
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE queue_deliveries SET in_flight = 1, attempts = 1, solo_runs = 2
		WHERE message_id = (SELECT id FROM queue_messages WHERE uuid = 'culprit')`); err != nil {
		t.Fatal(err)
	}

	rc := fastRetry(2)
	rc.LogMetadata = map[string]string{"correlation_id": "order_id"}
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "billing", Retry: rc})
	if err != nil {
		t.Fatal(err)
	}
	r.Handle("charge", "payments", func(*message.Message) error { return errors.New("gateway unavailable") })
	runRouter(t, r)
	waitFor(t, "two dead letters", func() bool { return len(deadLetters(t, q)) == 2 })
	traceOf := map[string]string{}
	for _, dl := range deadLetters(t, q) {
		// traceparent: 00-TRACEID-SPANID-FLAGS
		if parts := strings.Split(dl.Metadata["traceparent"], "-"); len(parts) == 4 {
			traceOf[dl.MessageUUID] = parts[1]
		}
	}
	waitFor(t, "the dead letters' records", func() bool {
		n := 0
		for _, id := range []string{"failing", "culprit"} {
			for _, r := range logs.about(id) {
				if r.msg == "Message dead-lettered" {
					n++
				}
			}
		}
		return n == 2
	})

	tests := []struct {
		id, order string
		want      []string // level and text of each record at info or above, in order
	}{
		{"failing", "o-1", []string{"WARN Handler failed; will retry", "ERROR Message dead-lettered"}},
		{"culprit", "o-2", []string{"ERROR Message dead-lettered"}},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			if traceOf[tc.id] == "" {
				t.Fatalf("dead letter of %s: no trace context in its metadata", tc.id)
			}
			var got []string
			for _, r := range logs.about(tc.id) {
				if r.level < slog.LevelDebug {
					continue // Watermill's trace records of every message
				}
				if r.traceID != traceOf[tc.id] {
					t.Errorf("record %v: got trace %q, want the message's, %s", r, r.traceID, traceOf[tc.id])
				}
				if r.msg == "Handler returned error" {
					if r.level != slog.LevelDebug {
						t.Errorf("router's record %v: got level %s, want DEBUG", r, r.level)
					}
					continue
				}
				if r.fields["order_id"] != tc.order {
					t.Errorf("record %v: got order_id %v, want %s", r, r.fields["order_id"], tc.order)
				}
				if r.level >= slog.LevelInfo {
					got = append(got, r.level.String()+" "+r.msg)
				}
			}
			if strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
				t.Errorf("records: got %q, want %q", got, tc.want)
			}
		})
	}
}

// all returns every record so far.
func (l recordingLogger) all() []record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]record(nil), *l.records...)
}
