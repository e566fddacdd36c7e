package ordertest

import (
	"context"
	"log/slog"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/trace"
)

// Logs is an slog.Handler that keeps every record, for tests that check
// what was logged and at which level. Safe for concurrent use.
type Logs struct {
	mu  sync.Mutex
	got []slog.Record
	// traces[i] is the trace of got[i]'s context (the trace_id a service's
	// handler logs), zero without one.
	traces []trace.TraceID
}

var _ slog.Handler = (*Logs)(nil)

func (l *Logs) Enabled(context.Context, slog.Level) bool { return true }

func (l *Logs) Handle(ctx context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, r.Clone())
	l.traces = append(l.traces, trace.SpanContextFromContext(ctx).TraceID())
	return nil
}

// TraceIDs returns the traces of the records kept so far with message
// msg, oldest first: the trace_id each would be logged with ("" for none).
func (l *Logs) TraceIDs(msg string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for i, r := range l.got {
		if r.Message != msg {
			continue
		}
		id := ""
		if l.traces[i].IsValid() {
			id = l.traces[i].String()
		}
		ids = append(ids, id)
	}
	return ids
}

func (l *Logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *Logs) WithGroup(string) slog.Handler      { return l }

// Records returns the records kept so far, oldest first.
func (l *Logs) Records() []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}
