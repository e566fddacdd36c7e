package app

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// instrumentationName is the scope of the spans and instruments of this
// package.
const instrumentationName = "github.com/orderflow/orderflow/services/order/internal/app"

// Options are the clock, telemetry and retry settings shared by the command
// handlers. Zero values take the defaults.
type Options struct {
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
	// TracerProvider creates the spans of timeouts and cancellations.
	// Default no-op.
	TracerProvider trace.TracerProvider
	// MeterProvider creates the saga metrics. Default no-op.
	MeterProvider metric.MeterProvider
	// Logger receives the saga's records. Default: discarded.
	Logger *slog.Logger
	// NewID returns the id of a new order. Default a UUIDv7 (time-ordered).
	NewID func() string
	// ConflictRetries is how often a command reloads the order and tries
	// again after an optimistic-concurrency conflict. Default 5.
	ConflictRetries int
}

func (o *Options) setDefaults() {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.TracerProvider == nil {
		o.TracerProvider = tracenoop.NewTracerProvider()
	}
	if o.MeterProvider == nil {
		o.MeterProvider = metricnoop.NewMeterProvider()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NewID == nil {
		o.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if o.ConflictRetries == 0 {
		o.ConflictRetries = 5
	}
}

// Validate reports unusable options.
func (o Options) Validate() error {
	if o.ConflictRetries < 0 {
		return errors.New("conflict retries must not be negative")
	}
	return nil
}

// committer is what every command handler shares: it turns a decision into
// stored events, projections and outbox messages, and records metrics once
// the transaction has committed.
type committer struct {
	opts    Options
	metrics *sagaMetrics
}

func newCommitter(opts Options) (*committer, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	m, err := newSagaMetrics(opts.MeterProvider)
	if err != nil {
		return nil, err
	}
	return &committer{opts: opts, metrics: m}, nil
}

func (c *committer) now() time.Time { return c.opts.Clock().UTC() }

// commit saves o (whose pending events are d's) and emits d's messages
// (Tx.Emit) with meta's causation id and the trace context of ctx, so the
// forwarder's publish span is a child of the span that made the decision;
// all within tx. An empty decision stores nothing.
func (c *committer) commit(ctx context.Context, tx Tx, o *domain.Order, d domain.Decision, meta EventMetadata, now time.Time) error {
	if d.IsEmpty() {
		return nil
	}
	msgs, err := decisionMessages(o, d)
	if err != nil {
		return err
	}
	if err := tx.SaveOrder(ctx, o, meta, now); err != nil {
		return fmt.Errorf("save order %s: %w", o.ID(), err)
	}
	for _, m := range msgs {
		if err := tx.Emit(ctx, m, meta.CausationID); err != nil {
			return fmt.Errorf("emit %s of order %s: %w", m.MessageType(), o.ID(), err)
		}
	}
	return nil
}

// retryOnConflict runs fn again, up to ConflictRetries times, while it fails
// with ErrConflict. fn must start from a fresh load of the order.
func (c *committer) retryOnConflict(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; ; attempt++ {
		err = fn()
		if !errors.Is(err, ErrConflict) || attempt >= c.opts.ConflictRetries {
			return err
		}
		c.metrics.conflicts.Add(ctx, 1)
		if ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
	}
}

// observe records the metrics of a committed decision.
func (c *committer) observe(ctx context.Context, o *domain.Order, d domain.Decision, now time.Time) {
	for _, e := range d.Events {
		switch e.(type) {
		case domain.OrderPlaced:
			c.metrics.placed.Add(ctx, 1)
		case domain.OrderCompleted, domain.OrderCancelled, domain.OrderRejected:
			c.metrics.finished(ctx, o.Status(), now.Sub(o.PlacedAt()))
		}
	}
}

// traceMetadata returns the trace id, span id and trace flags of ctx's
// span, if any.
func traceMetadata(ctx context.Context) (traceID, spanID, flags string) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", "", ""
	}
	return sc.TraceID().String(), sc.SpanID().String(), sc.TraceFlags().String()
}

// withRecordedParent returns ctx with the recorded span (hex ids and
// flags, as EventMetadata holds them) as its remote parent, so that a span
// started from it joins the order's trace. Without a valid recorded span
// ctx is returned as it is. Empty flags count as sampled.
func withRecordedParent(ctx context.Context, traceID, spanID, flags string) context.Context {
	tid, err1 := trace.TraceIDFromHex(traceID)
	sid, err2 := trace.SpanIDFromHex(spanID)
	if err1 != nil || err2 != nil {
		return ctx
	}
	tf := trace.FlagsSampled
	if b, err := hex.DecodeString(flags); err == nil && len(b) == 1 {
		tf = trace.TraceFlags(b[0])
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: tf, Remote: true,
	})
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// newMetadata builds the metadata of a decision taken under ctx.
func newMetadata(ctx context.Context, orderID, cause, causationID string) EventMetadata {
	traceID, spanID, flags := traceMetadata(ctx)
	return EventMetadata{
		CorrelationID: orderID, CausationID: causationID, Cause: cause,
		TraceID: traceID, SpanID: spanID, TraceFlags: flags,
	}
}
