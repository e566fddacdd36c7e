package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/queue/retry"
)

func TestWatermillLoggerWritesWhatWatermillsAdapterWrites(t *testing.T) {
	levels := map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}
	noTime := &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	logAll := func(l watermill.LoggerAdapter) {
		l = l.With(watermill.LogFields{"handler": "h"})
		l.Trace("trace", watermill.LogFields{"n": 1})
		l.Debug("debug", watermill.LogFields{"n": 2})
		l.Info("info", watermill.LogFields{"n": 3})
		l.Error("error", errors.New("boom"), watermill.LogFields{"n": 4})
	}
	var want, got bytes.Buffer
	logAll(watermill.NewSlogLoggerWithLevelMapping(slog.New(slog.NewJSONHandler(&want, noTime)), levels))
	logAll(NewWatermillLogger(slog.New(slog.NewJSONHandler(&got, noTime)), levels))
	if got.String() != want.String() {
		t.Errorf("got\n%s\nwant\n%s", got.String(), want.String())
	}
	// Debug level: trace dropped, info mapped to debug and kept.
	for _, msg := range []string{`"msg":"debug"`, `"msg":"info"`, `"msg":"error"`} {
		if !strings.Contains(got.String(), msg) {
			t.Errorf("got\n%s\nwant a record with %s", got.String(), msg)
		}
	}
	if strings.Contains(got.String(), `"msg":"trace"`) {
		t.Errorf("got\n%s\nwant no trace record at debug level", got.String())
	}
}

// Below the level, a record costs no allocation: Watermill's adapter
// would turn the fields into slog arguments first.
func TestWatermillLoggerBuildsNothingBelowTheLevel(t *testing.T) {
	l := NewWatermillLogger(slog.New(slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	fields := watermill.LogFields{"message_uuid": "m-1", "topic": "t"}
	if n := testing.AllocsPerRun(100, func() {
		l.Trace("received", fields)
		l.Debug("acked", fields)
		l.Info("started", fields)
	}); n != 0 {
		t.Errorf("got %v allocations per trace+debug+info below the level, want 0", n)
	}
}

// The queue's retry middleware writes its records with the message's
// context through the logger (retry.ContextLogger): they carry the trace
// id of the context's span, at the level asked (mapped as Watermill's
// levels are), with the fields of With and the error.
func TestWatermillLoggerWritesRecordsWithTheirContext(t *testing.T) {
	var out bytes.Buffer
	levels := map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}
	l := NewWatermillLogger(slog.New(NewTraceHandler(slog.NewJSONHandler(&out, nil))), levels)
	cl, ok := l.With(watermill.LogFields{"consumer_group": "payment"}).(retry.ContextLogger)
	if !ok {
		t.Fatalf("got a %T, want a retry.ContextLogger", l)
	}
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID}))

	cl.LogContext(ctx, slog.LevelInfo, "withdrawn", watermill.LogFields{"message_id": "m-1"}) // mapped to debug: dropped
	cl.LogContext(ctx, slog.LevelWarn, "will retry", watermill.LogFields{"message_id": "m-1", "error": errors.New("boom")})
	var rec map[string]any
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
		t.Fatalf("got %q, want one JSON record: %v", out.String(), err)
	}
	want := map[string]any{
		"level": "WARN", "msg": "will retry", LogKeyTraceID: traceID.String(), LogKeySpanID: spanID.String(),
		"consumer_group": "payment", "message_id": "m-1", "error": "boom",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s: got %v, want %v (record %v)", k, rec[k], v, rec)
		}
	}
}

// watermill-sql adds each failed poll's error to its subscription's logger
// with With, and keeps that logger: a field given again replaces the one
// of the same key, so that the records of a long outage do not grow by one
// "err" per failed poll (61 of them, 11.7 KB a record, after 30s), nor
// carry the consumer group twice (the queue's With and watermill-sql's).
func TestWatermillLoggerWithReplacesAFieldOfTheSameKey(t *testing.T) {
	var out bytes.Buffer
	l := NewWatermillLogger(slog.New(slog.NewJSONHandler(&out, nil)), nil).
		With(watermill.LogFields{"consumer_group": "payment"})
	sub := l.With(watermill.LogFields{"topic": "orders", "consumer_group": "payment"})
	for i := range 60 {
		sub = sub.With(watermill.LogFields{"err": fmt.Sprintf("poll %d failed", i)})
	}
	sub.Error("Cannot poll messages", errors.New("boom"), watermill.LogFields{"retry_in": "500ms"})
	sub.Info("overridden", watermill.LogFields{"topic": "payments"})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d records, want 2:\n%s", len(lines), out.String())
	}
	for key, want := range map[string]int{`"err":`: 1, `"consumer_group":`: 1, `"topic":`: 1, `"error":`: 1} {
		if n := strings.Count(lines[0], key); n != want {
			t.Errorf("got %d %s fields, want %d:\n%s", n, key, want, lines[0])
		}
	}
	if !strings.Contains(lines[0], `"err":"poll 59 failed"`) {
		t.Errorf("got\n%s\nwant the last err", lines[0])
	}
	// A record's own field replaces one of With too.
	if n := strings.Count(lines[1], `"topic":`); n != 1 || !strings.Contains(lines[1], `"topic":"payments"`) || !strings.Contains(lines[1], `"consumer_group":"payment"`) {
		t.Errorf("got\n%s\nwant one topic, the record's, and the consumer group of With", lines[1])
	}
}
