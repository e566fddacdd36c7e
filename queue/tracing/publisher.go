package tracing

import (
	"context"
	"errors"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// schemaURL is the semantic conventions version of the recorded attributes.
const schemaURL = semconv.SchemaURL

// Messaging operation names (messaging.operation.name) used in span names.
const (
	operationPublish = "publish"
	operationProcess = "process"
)

// NewPublisher decorates pub so that every published message is traced.
//
// For each message it starts a span "publish <topic>" of kind PRODUCER and
// writes that span's context into the message metadata (see Config.Inject),
// then hands all messages to pub in one Publish call and ends the spans, with
// status Error and the error recorded if Publish failed. The error is
// returned unchanged. The messages' metadata is modified in place.
//
// The parent of a publish span is, in order of preference:
//   - the span in msg.Context(): put the request context on the message with
//     msg.SetContext(ctx) before publishing;
//   - otherwise the trace context already stored in the message metadata, so
//     that re-publishing a stored message (outbox forwarder, DLQ replay)
//     continues its original trace instead of starting a new one;
//   - otherwise none: the publish span starts a new trace.
//
// For the transactional outbox, decorate both the publisher that writes to
// the outbox (the one returned by Watermill's forwarder.NewPublisher, so the
// trace context is stored inside the envelope) and the forwarder's
// destination publisher.
//
// The returned publisher is safe for concurrent use if pub is. Close closes
// pub.
func NewPublisher(pub message.Publisher, cfg Config) message.Publisher {
	cfg.setDefaults()
	return &publisher{
		pub:    pub,
		cfg:    cfg,
		tracer: cfg.tracer(),
		prop:   cfg.Propagator,
		system: cfg.System,
	}
}

type publisher struct {
	pub    message.Publisher
	cfg    Config
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	system string
}

// Publish implements message.Publisher.
func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	spans := make([]trace.Span, 0, len(msgs))
	for _, msg := range msgs {
		ctx := p.parentContext(msg)
		attrs := []attribute.KeyValue{
			semconv.MessagingSystemKey.String(p.system),
			semconv.MessagingDestinationName(topic),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName(operationPublish),
			semconv.MessagingMessageID(msg.UUID),
			semconv.MessagingMessageBodySize(len(msg.Payload)),
		}
		if len(msgs) > 1 {
			attrs = append(attrs, semconv.MessagingBatchMessageCount(len(msgs)))
		}
		attrs = append(attrs, p.cfg.metadataAttributes(msg.Metadata)...)
		ctx, span := p.tracer.Start(ctx, spanName(operationPublish, topic),
			trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attrs...),
		)
		inject(ctx, p.prop, msg)
		spans = append(spans, span)
	}

	err := p.pub.Publish(topic, msgs...)
	for _, span := range spans {
		if err != nil {
			recordError(span, err)
		}
		span.End()
	}
	return err
}

// Close implements message.Publisher by closing the decorated publisher.
func (p *publisher) Close() error {
	return p.pub.Close()
}

// parentContext picks the parent of the publish span: the span in the
// message's context, else the trace context stored in its metadata.
func (p *publisher) parentContext(msg *message.Message) context.Context {
	ctx := msg.Context()
	if trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	if _, ok := msg.Metadata[MetadataTraceParent]; !ok {
		return ctx
	}
	return p.prop.Extract(ctx, MetadataCarrier(msg.Metadata))
}

func spanName(operation, topic string) string {
	if topic == "" {
		return operation
	}
	return operation + " " + topic
}

// ErrorTyper is an error that names its class for the error.type
// attribute (a short, fixed text), where its Go type would say nothing: a
// wrapper such as the retry middleware's, around whatever the handler
// returned.
type ErrorTyper interface {
	error
	ErrorType() string
}

func recordError(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(errorType(err))
}

// errorType is err's error.type attribute: the class an ErrorTyper in its
// chain names, else its Go type.
func errorType(err error) attribute.KeyValue {
	if t, ok := errors.AsType[ErrorTyper](err); ok {
		return semconv.ErrorTypeKey.String(t.ErrorType())
	}
	return semconv.ErrorType(err)
}
