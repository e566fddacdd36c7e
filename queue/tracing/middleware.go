package tracing

import (
	"fmt"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/queue/backend"
)

// Middleware returns router middleware that runs each handler call inside a
// "process <topic>" span of kind CONSUMER.
//
// The span's parent is the trace context in the message metadata (normally
// the producer span written by NewPublisher); without one, the span in
// msg.Context(), if any; otherwise the span starts a new trace. The topic
// comes from message.SubscribeTopicFromCtx, so the middleware must run in a
// message.Router; the consumer group from Config.ConsumerGroup.
//
// Before calling the handler, the middleware sets msg's context to the span's
// context, so database calls and logs made with msg.Context() are children of
// the span. Messages the handler returns whose context has no span get that
// context too, so that the router publishes them (through a NewPublisher
// decorator) as children of this span, in the same trace. msg keeps the
// span's context after the handler returns; the span itself has ended then.
//
// The delivery attempt (metadata MetadataAttempt, 1-based; missing means 1) is
// recorded as AttemptKey; an attempt above 1 also adds an EventRetry event. A
// message replayed from the dead-letter store (metadata
// backend.MetadataReplayedFrom) adds an EventReplay event, on each of its
// deliveries. A handler error (or panic, which is re-raised) sets the status
// to Error.
//
// Add Middleware before retry, dead-letter and recoverer middleware, so that
// they run inside the span and RecordDeadLetter reaches it.
func Middleware(cfg Config) message.HandlerMiddleware {
	cfg.setDefaults()
	tracer := cfg.tracer()

	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) (produced []*message.Message, err error) {
			ctx := cfg.Propagator.Extract(msg.Context(), MetadataCarrier(msg.Metadata))
			topic := message.SubscribeTopicFromCtx(ctx)

			attrs := []attribute.KeyValue{
				semconv.MessagingSystemKey.String(cfg.System),
				semconv.MessagingDestinationName(topic),
				semconv.MessagingOperationTypeProcess,
				semconv.MessagingOperationName(operationProcess),
				semconv.MessagingMessageID(msg.UUID),
				semconv.MessagingMessageBodySize(len(msg.Payload)),
			}
			if cfg.ConsumerGroup != "" {
				attrs = append(attrs, semconv.MessagingConsumerGroupName(cfg.ConsumerGroup))
			}
			if name := message.HandlerNameFromCtx(ctx); name != "" {
				attrs = append(attrs, HandlerNameKey.String(name))
			}
			attrs = append(attrs, cfg.metadataAttributes(msg.Metadata)...)
			attempt, attemptOK := parseAttempt(msg.Metadata.Get(MetadataAttempt))
			if attemptOK {
				attrs = append(attrs, AttemptKey.Int(attempt))
			}

			ctx, span := tracer.Start(ctx, spanName(operationProcess, topic),
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attrs...),
			)
			defer func() {
				if r := recover(); r != nil {
					span.SetStatus(codes.Error, fmt.Sprintf("panic: %v", r))
					span.End()
					panic(r)
				}
				span.End()
			}()
			if attempt > 1 {
				span.AddEvent(EventRetry, trace.WithAttributes(AttemptKey.Int(attempt)))
			}
			if replay := replayAttributes(msg.Metadata); replay != nil {
				span.AddEvent(EventReplay, trace.WithAttributes(replay...))
			}

			msg.SetContext(ctx)
			produced, err = h(msg)
			if err != nil {
				recordError(span, err)
			}
			for _, p := range produced {
				if p != nil && !trace.SpanContextFromContext(p.Context()).IsValid() {
					p.SetContext(ctx)
				}
			}
			return produced, err
		}
	}
}

// parseAttempt reads the 1-based attempt from metadata. A missing value means
// the first attempt; an unreadable or non-positive one is reported as not ok.
func parseAttempt(v string) (int, bool) {
	if v == "" {
		return 1, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// replayAttributes returns the attributes of an EventReplay for a message
// carrying backend.MetadataReplayedFrom, nil for any other.
func replayAttributes(md message.Metadata) []attribute.KeyValue {
	from := md.Get(backend.MetadataReplayedFrom)
	if from == "" {
		return nil
	}
	var attrs []attribute.KeyValue
	if id, err := strconv.ParseInt(from, 10, 64); err == nil {
		attrs = append(attrs, ReplayDeadLetterIDKey.Int64(id))
	} else {
		attrs = append(attrs, ReplayDeadLetterIDKey.String(from))
	}
	if at := md.Get(backend.MetadataReplayedAt); at != "" {
		attrs = append(attrs, ReplayTimeKey.String(at))
	}
	if reason := md.Get(backend.MetadataDeadLetterReason); reason != "" {
		attrs = append(attrs, DeadLetterReasonKey.String(reason))
	}
	return attrs
}
