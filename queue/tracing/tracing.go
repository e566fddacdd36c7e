// Package tracing carries OpenTelemetry trace context through Watermill
// messages and records producer and consumer spans with the OpenTelemetry
// messaging semantic conventions (semconv v1.43.0).
//
// The pieces fit together like this:
//
//   - NewPublisher decorates a message.Publisher: every published message gets
//     a "publish <topic>" span (kind PRODUCER) whose context is written into
//     the message metadata under MetadataTraceParent and MetadataTraceState
//     (W3C Trace Context), plus W3C baggage with the default propagator.
//   - Middleware is router middleware: it reads that context back and runs
//     the handler inside a "process <topic>" span (kind CONSUMER), a child of
//     the producer span, so that one business flow is one trace across
//     processes.
//   - RecordDeadLetter marks the current span when a message is given up on.
//
// Inject and Extract expose the metadata propagation on its own for code that
// moves messages without a publisher (for example a DLQ replay tool that
// wants to log the trace id of a stored message).
//
// The package keeps no mutable package-level state: tracer providers and
// propagators come from Config.
package tracing

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/queue/backend"
)

// Metadata keys holding the trace context of a message. They are the W3C Trace
// Context header names, so any OpenTelemetry propagator understands them.
// They are part of the wire contract between processes: do not rename.
const (
	// MetadataTraceParent holds the W3C traceparent of the producer span.
	MetadataTraceParent = "traceparent"
	// MetadataTraceState holds the W3C tracestate; absent when empty.
	MetadataTraceState = "tracestate"
	// MetadataAttempt is the 1-based delivery attempt set by the queue
	// backends (the same key as backend.MetadataAttempt).
	MetadataAttempt = backend.MetadataAttempt
)

// Span event names and custom attributes recorded by this package.
const (
	// EventRetry is added to a consumer span whose message is delivered for
	// the second time or later.
	EventRetry = "retry"
	// EventDeadLetter is added by RecordDeadLetter.
	EventDeadLetter = "dead_letter"
	// EventReplay is added by Middleware to a consumer span whose message
	// was replayed from the dead-letter store (it carries
	// backend.MetadataReplayedFrom), on every delivery of it: the span
	// would otherwise show a dead-lettered message handled again, at
	// attempt 1, with no cause. Its attributes are ReplayDeadLetterIDKey,
	// ReplayTimeKey and DeadLetterReasonKey (why the dead letter had
	// failed), each when the message carries it.
	EventReplay = "replay"

	// AttemptKey is the delivery attempt of the message (1-based). The
	// messaging semantic conventions define only system-specific delivery
	// counters, so this is a custom attribute.
	AttemptKey = attribute.Key("messaging.delivery.attempt")
	// DeadLetterReasonKey is the reason given to RecordDeadLetter; on an
	// EventReplay, the reason the replayed dead letter had been given.
	DeadLetterReasonKey = attribute.Key("messaging.dead_letter.reason")
	// ReplayDeadLetterIDKey is the id of the dead letter an EventReplay's
	// message was replayed from (an integer; a string if the metadata
	// holds something else).
	ReplayDeadLetterIDKey = attribute.Key("messaging.replay.dead_letter.id")
	// ReplayTimeKey is when the replay published the message, as the
	// metadata holds it (RFC 3339).
	ReplayTimeKey = attribute.Key("messaging.replay.time")
	// HandlerNameKey is the Watermill router handler that processed the
	// message (custom attribute).
	HandlerNameKey = attribute.Key("messaging.watermill.handler")
)

// instrumentationName is the instrumentation scope of every tracer created
// by this package.
const instrumentationName = "github.com/orderflow/orderflow/queue/tracing"

// defaultSystem is messaging.system when Config.System is empty.
const defaultSystem = "watermill"

// Config configures NewPublisher and Middleware. The zero value works: it
// traces through the global TracerProvider with the W3C propagators.
type Config struct {
	// TracerProvider creates the spans. Nil means otel.GetTracerProvider(),
	// read once when NewPublisher or Middleware is called. Prefer passing
	// the provider explicitly.
	TracerProvider trace.TracerProvider

	// Propagator writes and reads the trace context in message metadata.
	// Nil means W3C Trace Context plus W3C Baggage (DefaultPropagator).
	// The otel global propagator is deliberately not the default: it is a
	// no-op until someone sets it, which would silently break traces.
	Propagator propagation.TextMapPropagator

	// System is the messaging.system attribute, the queue backend's name,
	// for example "sqlite" or "postgresql". Default "watermill".
	System string

	// ConsumerGroup is the messaging.consumer.group.name attribute on
	// consumer spans. Empty omits the attribute. Unused by NewPublisher.
	ConsumerGroup string

	// MetadataAttributes are message metadata the producer and consumer
	// spans carry as string attributes: metadata key → attribute key
	// ({"type": "app.message.type"}, say). Without them a trace does not
	// say which message a span carries: every "process <topic>" looks
	// alike. A key the message lacks (or holds empty) adds nothing. Keep
	// to metadata of few values per key or ids worth searching by:
	// tracing backends index attributes.
	MetadataAttributes map[string]string
}

// metadataAttributes returns the attributes MetadataAttributes takes
// from md.
func (c Config) metadataAttributes(md message.Metadata) []attribute.KeyValue {
	var out []attribute.KeyValue
	for key, attr := range c.MetadataAttributes {
		if v := md.Get(key); v != "" && attr != "" {
			out = append(out, attribute.String(attr, v))
		}
	}
	return out
}

func (c *Config) setDefaults() {
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.Propagator == nil {
		c.Propagator = DefaultPropagator()
	}
	if c.System == "" {
		c.System = defaultSystem
	}
}

func (c *Config) tracer() trace.Tracer {
	return c.TracerProvider.Tracer(instrumentationName, trace.WithSchemaURL(schemaURL))
}

// DefaultPropagator returns the propagator used when Config.Propagator is nil:
// W3C Trace Context and W3C Baggage.
func DefaultPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// MetadataCarrier adapts message metadata to propagation.TextMapCarrier.
// Set on a nil MetadataCarrier panics, like assigning to a nil map; messages
// made by message.NewMessage always have non-nil metadata.
type MetadataCarrier message.Metadata

var _ propagation.TextMapCarrier = MetadataCarrier(nil)

// Get returns the value stored under key, or "".
func (c MetadataCarrier) Get(key string) string { return c[key] }

// Set stores value under key, replacing any previous value.
func (c MetadataCarrier) Set(key, value string) { c[key] = value }

// Keys lists the metadata keys, in no particular order.
func (c MetadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the span context (and baggage) of ctx into msg's metadata
// with DefaultPropagator. See Config.Inject.
func Inject(ctx context.Context, msg *message.Message) {
	inject(ctx, DefaultPropagator(), msg)
}

// Extract returns ctx extended with the span context (and baggage) stored in
// msg's metadata, read with DefaultPropagator. See Config.Extract.
func Extract(ctx context.Context, msg *message.Message) context.Context {
	return DefaultPropagator().Extract(ctx, MetadataCarrier(msg.Metadata))
}

// Inject writes the span context (and baggage) of ctx into msg's metadata
// with the configured propagator. The propagator's fields (traceparent,
// tracestate, baggage) are removed first, so a stale tracestate of an
// earlier hop never survives next to a new traceparent. If ctx holds no
// valid span context, the message ends up without trace context.
func (c Config) Inject(ctx context.Context, msg *message.Message) {
	inject(ctx, c.propagator(), msg)
}

// Extract returns ctx extended with the span context (and baggage) stored in
// msg's metadata, read with the configured propagator. The extracted span
// context is remote: a span started from the returned context is its child.
// Without trace metadata, ctx is returned unchanged in effect.
func (c Config) Extract(ctx context.Context, msg *message.Message) context.Context {
	return c.propagator().Extract(ctx, MetadataCarrier(msg.Metadata))
}

func (c Config) propagator() propagation.TextMapPropagator {
	if c.Propagator == nil {
		return DefaultPropagator()
	}
	return c.Propagator
}

func inject(ctx context.Context, p propagation.TextMapPropagator, msg *message.Message) {
	if msg.Metadata == nil {
		msg.Metadata = make(message.Metadata)
	}
	for _, f := range p.Fields() {
		delete(msg.Metadata, f)
	}
	p.Inject(ctx, MetadataCarrier(msg.Metadata))
}

// RecordDeadLetter marks the span of ctx as failed because its message was
// moved to the dead-letter queue for reason (a short, fixed text such as
// "max attempts" or "permanent"), after err (the handler's last error, or
// why the message could not be read; nil if none): it adds an
// EventDeadLetter event carrying reason, records err as an exception
// event, sets the error.type attribute to reason (a dead letter is the
// failure a dashboard or a search by error.type must not miss) and the
// span status to Error, described by reason and err.
//
// Call it with msg.Context() from middleware that runs inside Middleware
// (added after it): once Middleware returns, the consumer span has ended
// and the call has no effect. Without a recording span in ctx it does
// nothing.
func RecordDeadLetter(ctx context.Context, reason string, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent(EventDeadLetter, trace.WithAttributes(DeadLetterReasonKey.String(reason)))
	description := reason
	if err != nil {
		span.RecordError(err)
		description += ": " + err.Error()
	}
	span.SetAttributes(semconv.ErrorTypeKey.String(reason))
	span.SetStatus(codes.Error, description)
}
