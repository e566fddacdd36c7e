package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys added by the trace handler.
const (
	LogKeyTraceID = "trace_id"
	LogKeySpanID  = "span_id"
)

// NewTraceHandler wraps next so that every record whose context holds a
// valid span context gets LogKeyTraceID and LogKeySpanID attributes (hex),
// placed before the record's own attributes. Records logged without a
// context (Info rather than InfoContext) get none.
//
// Caveat: like any attribute of the record, the ids land inside the groups
// opened with WithGroup on the logger.
func NewTraceHandler(next slog.Handler) slog.Handler {
	return traceHandler{next: next}
}

type traceHandler struct {
	next slog.Handler
}

func (h traceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return h.next.Handle(ctx, r)
	}
	// A fresh record: AddAttrs on a shallow copy of r could write into
	// memory shared with the caller's record.
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	attrs := make([]slog.Attr, 0, 2+r.NumAttrs())
	attrs = append(attrs,
		slog.String(LogKeyTraceID, sc.TraceID().String()),
		slog.String(LogKeySpanID, sc.SpanID().String()),
	)
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, a)
		return true
	})
	out.AddAttrs(attrs...)
	return h.next.Handle(ctx, out)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	if !settledAttrs(attrs) {
		// A pointer, map or LogValuer must be read now, as slog's
		// handlers do, not when (and on whichever goroutine) the first
		// record comes.
		return traceHandler{next: h.next.WithAttrs(attrs)}
	}
	return traceHandler{next: &deferredHandler{parent: h.next, attrs: attrs}}
}

// settledAttrs reports whether every value in attrs (groups included) is
// of a kind that holds no reference: formatting it later gives what
// formatting it now would.
func settledAttrs(attrs []slog.Attr) bool {
	for _, a := range attrs {
		switch a.Value.Kind() {
		case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindFloat64,
			slog.KindBool, slog.KindDuration, slog.KindTime:
		case slog.KindGroup:
			if !settledAttrs(a.Value.Group()) {
				return false
			}
		default: // KindAny, KindLogValuer
			return false
		}
	}
	return true
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return traceHandler{next: &deferredHandler{parent: h.next, group: name}}
}

// deferredHandler is parent.WithAttrs(attrs) (or parent.WithGroup(group)),
// made on the first record that reaches it. slog's handlers format the
// attributes of WithAttrs at once, so a logger made per message with
// Logger.With — order and message ids — cost every message that encoding
// even when nothing was logged at the level in force (1.6 % of the
// services' CPU under load).
//
// Only attributes whose values hold no reference are deferred
// (settledAttrs), so the record shows them as they were at With.
//
// Caveat: Enabled asks parent, so a handler whose level depends on its
// attributes would be asked without them (slog's own handlers' does not).
type deferredHandler struct {
	parent slog.Handler
	attrs  []slog.Attr
	group  string

	once sync.Once
	made slog.Handler
}

func (d *deferredHandler) handler() slog.Handler {
	d.once.Do(func() {
		parent := d.parent
		if p, ok := parent.(*deferredHandler); ok {
			parent = p.handler()
		}
		if d.group != "" {
			d.made = parent.WithGroup(d.group)
			return
		}
		d.made = parent.WithAttrs(d.attrs)
	})
	return d.made
}

func (d *deferredHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return d.parent.Enabled(ctx, level)
}

func (d *deferredHandler) Handle(ctx context.Context, r slog.Record) error {
	return d.handler().Handle(ctx, r)
}

func (d *deferredHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if !settledAttrs(attrs) {
		return d.handler().WithAttrs(attrs)
	}
	return &deferredHandler{parent: d, attrs: attrs}
}

func (d *deferredHandler) WithGroup(name string) slog.Handler {
	return &deferredHandler{parent: d, group: name}
}

// rateLimitedHandler is an otel.ErrorHandler that logs at most one record per
// interval and counts what it drops.
type rateLimitedHandler struct {
	logger   *slog.Logger
	interval time.Duration
	now      func() time.Time // time.Now; replaced in tests

	mu         sync.Mutex
	last       time.Time // when the last record was logged; zero before
	suppressed int       // errors dropped since then
}

func newRateLimitedHandler(logger *slog.Logger, interval time.Duration) *rateLimitedHandler {
	return &rateLimitedHandler{logger: logger, interval: interval, now: time.Now}
}

// Handle implements otel.ErrorHandler. It is safe for concurrent use and
// never blocks on anything but the log writer.
func (h *rateLimitedHandler) Handle(err error) {
	h.mu.Lock()
	now := h.now()
	if !h.last.IsZero() && now.Sub(h.last) < h.interval {
		h.suppressed++
		h.mu.Unlock()
		return
	}
	suppressed := h.suppressed
	h.last, h.suppressed = now, 0
	h.mu.Unlock()

	h.logger.Warn("opentelemetry error",
		slog.Any("error", err),
		slog.Int("suppressed", suppressed),
		slog.String("rate_limit", h.interval.String()),
	)
}
