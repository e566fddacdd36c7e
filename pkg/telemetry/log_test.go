package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
)

// countingHandler counts the WithAttrs and WithGroup calls that reach it.
type countingHandler struct {
	slog.Handler
	derived *int
}

func (h countingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	*h.derived++
	return countingHandler{Handler: h.Handler.WithAttrs(attrs), derived: h.derived}
}

func (h countingHandler) WithGroup(name string) slog.Handler {
	*h.derived++
	return countingHandler{Handler: h.Handler.WithGroup(name), derived: h.derived}
}

// A logger derived with With formats its attributes only once something
// is logged through it, and only once.
func TestDerivedLoggerFormatsAttributesOnFirstUse(t *testing.T) {
	var (
		out     bytes.Buffer
		derived int
	)
	next := countingHandler{Handler: slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}), derived: &derived}
	log := slog.New(NewTraceHandler(next)).With("order_id", "o-1")

	log.Debug("below the level")
	if derived != 0 || out.Len() != 0 {
		t.Fatalf("after a record below the level: got %d derived handlers and output %q, want none", derived, out.String())
	}
	log.Info("first")
	log.Info("second")
	if derived != 1 {
		t.Errorf("after two records: got %d derived handlers, want 1", derived)
	}
}

// Attributes and groups, however interleaved, come out as the wrapped
// handler writes them without the trace handler.
func TestDerivedLoggerWritesWhatTheWrappedHandlerWrites(t *testing.T) {
	derive := func(l *slog.Logger) *slog.Logger {
		return l.With("a", 1).WithGroup("g").With("b", 2).WithGroup("h")
	}
	var want, got bytes.Buffer
	opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	derive(slog.New(slog.NewJSONHandler(&want, opts))).InfoContext(context.Background(), "m", "c", 3)
	derive(slog.New(NewTraceHandler(slog.NewJSONHandler(&got, opts)))).InfoContext(context.Background(), "m", "c", 3)
	if got.String() != want.String() {
		t.Errorf("got %s, want %s", got.String(), want.String())
	}
}

type counter struct{ N int }

// A value that can change after With (a pointer here) is read at With, as
// slog's own handlers read it, not when the first record is written.
func TestDerivedLoggerReadsReferencesAtWith(t *testing.T) {
	opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	run := func(h slog.Handler) {
		c := &counter{N: 1}
		log := slog.New(h).With("c", c, "n", 1).WithGroup("g").With("d", c)
		c.N = 2
		log.Info("m")
	}
	var want, got bytes.Buffer
	run(slog.NewJSONHandler(&want, opts))
	run(NewTraceHandler(slog.NewJSONHandler(&got, opts)))
	if got.String() != want.String() {
		t.Errorf("got %s, want %s", got.String(), want.String())
	}
}
