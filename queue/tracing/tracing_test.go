package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/tracing"
)

const waitFor = 5 * time.Second

func newTracing(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

// startRouter runs a router with the tracing middleware until the test ends.
// add registers the handlers.
func startRouter(t *testing.T, cfg tracing.Config, add func(r *message.Router)) {
	t.Helper()
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("new router: %v", err)
	}
	r.AddMiddleware(tracing.Middleware(cfg))
	add(r)

	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close router: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("router run: %v", err)
		}
	})
	select {
	case <-r.Running():
	case <-time.After(waitFor):
		t.Fatal("router did not start")
	}
}

func newPubSub(t *testing.T) *gochannel.GoChannel {
	t.Helper()
	ps := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })
	return ps
}

// waitSpans waits until the recorder holds at least n ended spans named name
// and returns them in the order they ended.
func waitSpans(t *testing.T, rec *tracetest.SpanRecorder, name string, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		got := spansNamed(rec, name)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d ended spans named %q, want at least %d", len(got), name, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value)
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[attribute.Key]any) {
	t.Helper()
	got := attrs(s)
	for k, w := range want {
		v, ok := got[k]
		if !ok {
			t.Errorf("span %q: attribute %s missing, want %v", s.Name(), k, w)
			continue
		}
		if v.AsInterface() != w {
			t.Errorf("span %q: attribute %s: got %v, want %v", s.Name(), k, v.AsInterface(), w)
		}
	}
}

func checkChild(t *testing.T, child sdktrace.ReadOnlySpan, parent trace.SpanContext) {
	t.Helper()
	if got, want := child.SpanContext().TraceID(), parent.TraceID(); got != want {
		t.Errorf("span %q: got trace id %s, want %s", child.Name(), got, want)
	}
	if got, want := child.Parent().SpanID(), parent.SpanID(); got != want {
		t.Errorf("span %q: got parent span id %s, want %s", child.Name(), got, want)
	}
}

func eventNamed(s sdktrace.ReadOnlySpan, name string) (sdktrace.Event, bool) {
	for _, e := range s.Events() {
		if e.Name == name {
			return e, true
		}
	}
	return sdktrace.Event{}, false
}

func TestPublishAndProcess(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name        string
		attempt     string // metadata "attempt"; "" means unset
		handlerErr  error  // returned by the first handler call only
		wantAttempt int64
		wantRetry   bool
		wantStatus  codes.Code
		wantDesc    string
	}{
		{name: "first delivery", wantAttempt: 1, wantStatus: codes.Unset},
		{name: "explicit first attempt", attempt: "1", wantAttempt: 1, wantStatus: codes.Unset},
		{name: "second attempt records retry", attempt: "2", wantAttempt: 2, wantRetry: true, wantStatus: codes.Unset},
		{name: "handler error", handlerErr: errBoom, wantAttempt: 1, wantStatus: codes.Error, wantDesc: "boom"},
		{name: "failing retry", attempt: "3", handlerErr: errBoom, wantAttempt: 3, wantRetry: true, wantStatus: codes.Error, wantDesc: "boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp, rec := newTracing(t)
			ps := newPubSub(t)
			cfg := tracing.Config{TracerProvider: tp, System: "sqlite", ConsumerGroup: "inventory"}
			const topic = "inventory.commands"

			var calls atomic.Int32
			startRouter(t, cfg, func(r *message.Router) {
				r.AddConsumerHandler("reserve", topic, ps, func(msg *message.Message) error {
					if !trace.SpanContextFromContext(msg.Context()).IsValid() {
						t.Error("handler context has no span")
					}
					if calls.Add(1) == 1 {
						return tc.handlerErr
					}
					return nil
				})
			})

			ctx, parent := tp.Tracer("test").Start(context.Background(), "POST /orders")
			msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order_id":"o-1"}`))
			if tc.attempt != "" {
				msg.Metadata.Set(tracing.MetadataAttempt, tc.attempt)
			}
			msg.SetContext(ctx)
			if err := tracing.NewPublisher(ps, cfg).Publish(topic, msg); err != nil {
				t.Fatalf("publish: %v", err)
			}
			parent.End()

			pubSpan := waitSpans(t, rec, "publish "+topic, 1)[0]
			procSpan := waitSpans(t, rec, "process "+topic, 1)[0]

			if got, want := pubSpan.SpanKind(), trace.SpanKindProducer; got != want {
				t.Errorf("publish span: got kind %v, want %v", got, want)
			}
			checkChild(t, pubSpan, parent.SpanContext())
			checkAttrs(t, pubSpan, map[attribute.Key]any{
				"messaging.system":            "sqlite",
				"messaging.destination.name":  topic,
				"messaging.operation.type":    "send",
				"messaging.operation.name":    "publish",
				"messaging.message.id":        msg.UUID,
				"messaging.message.body.size": int64(len(msg.Payload)),
			})

			if got, want := procSpan.SpanKind(), trace.SpanKindConsumer; got != want {
				t.Errorf("process span: got kind %v, want %v", got, want)
			}
			checkChild(t, procSpan, pubSpan.SpanContext())
			if !procSpan.Parent().IsRemote() {
				t.Errorf("process span: got local parent, want remote parent")
			}
			checkAttrs(t, procSpan, map[attribute.Key]any{
				"messaging.system":              "sqlite",
				"messaging.destination.name":    topic,
				"messaging.operation.type":      "process",
				"messaging.operation.name":      "process",
				"messaging.consumer.group.name": "inventory",
				"messaging.message.id":          msg.UUID,
				"messaging.message.body.size":   int64(len(msg.Payload)),
				tracing.AttemptKey:              tc.wantAttempt,
				tracing.HandlerNameKey:          "reserve",
			})

			if got := procSpan.Status(); got.Code != tc.wantStatus || got.Description != tc.wantDesc {
				t.Errorf("process span: got status %v %q, want %v %q", got.Code, got.Description, tc.wantStatus, tc.wantDesc)
			}
			if tc.handlerErr != nil {
				if _, ok := eventNamed(procSpan, "exception"); !ok {
					t.Errorf("process span: got no exception event, want one")
				}
			}

			ev, gotRetry := eventNamed(procSpan, tracing.EventRetry)
			if gotRetry != tc.wantRetry {
				t.Fatalf("process span: got retry event %v, want %v", gotRetry, tc.wantRetry)
			}
			if gotRetry {
				if len(ev.Attributes) != 1 || ev.Attributes[0] != tracing.AttemptKey.Int64(tc.wantAttempt) {
					t.Errorf("retry event: got attributes %v, want [%s=%d]", ev.Attributes, tracing.AttemptKey, tc.wantAttempt)
				}
			}
		})
	}
}

// TestProducedMessagesJoinTrace follows one request through two hops: a
// handler that emits a message (with a fresh context, as handlers usually
// do) and a second consumer. Every span must belong to the request's trace.
func TestProducedMessagesJoinTrace(t *testing.T) {
	tp, rec := newTracing(t)
	ps := newPubSub(t)
	cfg := tracing.Config{TracerProvider: tp, System: "sqlite"}
	tracedPub := tracing.NewPublisher(ps, cfg)

	startRouter(t, cfg, func(r *message.Router) {
		r.AddHandler("order-saga", "inventory.events", ps, "payment.commands", tracedPub,
			func(msg *message.Message) ([]*message.Message, error) {
				return []*message.Message{message.NewMessage(watermill.NewUUID(), []byte("charge"))}, nil
			})
		r.AddConsumerHandler("charge", "payment.commands", ps, func(*message.Message) error { return nil })
	})

	ctx, root := tp.Tracer("test").Start(context.Background(), "root")
	msg := message.NewMessage(watermill.NewUUID(), []byte("reserved"))
	msg.SetContext(ctx)
	if err := tracedPub.Publish("inventory.events", msg); err != nil {
		t.Fatalf("publish: %v", err)
	}
	root.End()

	pub1 := waitSpans(t, rec, "publish inventory.events", 1)[0]
	proc1 := waitSpans(t, rec, "process inventory.events", 1)[0]
	pub2 := waitSpans(t, rec, "publish payment.commands", 1)[0]
	proc2 := waitSpans(t, rec, "process payment.commands", 1)[0]

	checkChild(t, pub1, root.SpanContext())
	checkChild(t, proc1, pub1.SpanContext())
	checkChild(t, pub2, proc1.SpanContext())
	checkChild(t, proc2, pub2.SpanContext())
}

// capturePublisher records what it is asked to publish and fails with err.
type capturePublisher struct {
	msgs []*message.Message
	err  error
}

func (p *capturePublisher) Publish(_ string, msgs ...*message.Message) error {
	p.msgs = append(p.msgs, msgs...)
	return p.err
}

func (p *capturePublisher) Close() error { return nil }

func TestPublisherParent(t *testing.T) {
	tp, rec := newTracing(t)
	tracer := tp.Tracer("test")

	// stored is the trace context of a message written earlier, e.g. into
	// an outbox or the dead-letter queue.
	_, storedSpan := tracer.Start(context.Background(), "stored")
	storedSpan.End()
	stored := storedSpan.SpanContext()
	storedMeta := message.Metadata{}
	tracing.Inject(trace.ContextWithSpanContext(context.Background(), stored), &message.Message{Metadata: storedMeta})
	storedMeta.Set(tracing.MetadataTraceState, "vendor=stored")

	ctxWithSpan, live := tracer.Start(context.Background(), "live")
	live.End()

	tests := []struct {
		name       string
		ctx        context.Context
		metadata   message.Metadata
		wantParent trace.SpanContext // invalid: want a new trace
		// wantState is the tracestate the message leaves with: the parent's.
		wantState string
	}{
		{name: "context span", ctx: ctxWithSpan, wantParent: live.SpanContext()},
		{name: "context span wins over stored context", ctx: ctxWithSpan, metadata: storedMeta, wantParent: live.SpanContext()},
		{name: "stored context when context has no span", ctx: context.Background(), metadata: storedMeta, wantParent: stored, wantState: "vendor=stored"},
		{name: "no parent starts a trace", ctx: context.Background()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec.Reset()
			capture := &capturePublisher{}
			msg := message.NewMessage(watermill.NewUUID(), []byte("x"))
			for k, v := range tc.metadata {
				msg.Metadata.Set(k, v)
			}
			msg.SetContext(tc.ctx)

			if err := tracing.NewPublisher(capture, tracing.Config{TracerProvider: tp}).Publish("t", msg); err != nil {
				t.Fatalf("publish: %v", err)
			}
			spans := spansNamed(rec, "publish t")
			if len(spans) != 1 {
				t.Fatalf("got %d publish spans, want 1", len(spans))
			}
			span := spans[0]

			if tc.wantParent.IsValid() {
				checkChild(t, span, tc.wantParent)
			} else if span.Parent().IsValid() {
				t.Errorf("got parent %s, want none", span.Parent().SpanID())
			}

			// The message now carries the publish span, not the stored one,
			// and no stale tracestate of the stored context.
			got := trace.SpanContextFromContext(tracing.Extract(context.Background(), capture.msgs[0]))
			if got.SpanID() != span.SpanContext().SpanID() || got.TraceID() != span.SpanContext().TraceID() {
				t.Errorf("got injected span %s/%s, want %s/%s", got.TraceID(), got.SpanID(),
					span.SpanContext().TraceID(), span.SpanContext().SpanID())
			}
			if got := capture.msgs[0].Metadata.Get(tracing.MetadataTraceState); got != tc.wantState {
				t.Errorf("got tracestate %q, want %q", got, tc.wantState)
			}
			checkAttrs(t, span, map[attribute.Key]any{"messaging.system": "watermill"})
		})
	}
}

func TestPublisherError(t *testing.T) {
	tp, rec := newTracing(t)
	errDown := errors.New("queue down")
	pub := tracing.NewPublisher(&capturePublisher{err: errDown}, tracing.Config{TracerProvider: tp})

	msgs := []*message.Message{
		message.NewMessage(watermill.NewUUID(), nil),
		message.NewMessage(watermill.NewUUID(), nil),
	}
	if err := pub.Publish("t", msgs...); !errors.Is(err, errDown) {
		t.Fatalf("got error %v, want %v", err, errDown)
	}
	spans := spansNamed(rec, "publish t")
	if got, want := len(spans), len(msgs); got != want {
		t.Fatalf("got %d publish spans, want %d", got, want)
	}
	for i, s := range spans {
		if got := s.Status(); got.Code != codes.Error || got.Description != errDown.Error() {
			t.Errorf("span %d: got status %v %q, want %v %q", i, got.Code, got.Description, codes.Error, errDown)
		}
		checkAttrs(t, s, map[attribute.Key]any{
			"messaging.batch.message_count": int64(len(msgs)),
			"messaging.message.id":          msgs[i].UUID,
		})
	}
}

// Metadata named in MetadataAttributes is on the publish and process
// spans of the message, under its attribute key; a key the message lacks
// adds nothing.
func TestMetadataAttributes(t *testing.T) {
	tp, rec := newTracing(t)
	cfg := tracing.Config{TracerProvider: tp, MetadataAttributes: map[string]string{"type": "app.message.type", "correlation_id": "order.id"}}
	msg := message.NewMessage(watermill.NewUUID(), nil)
	msg.Metadata.Set("type", "payment.RefundPayment")
	if err := tracing.NewPublisher(&capturePublisher{}, cfg).Publish("t", msg); err != nil {
		t.Fatal(err)
	}
	h := tracing.Middleware(cfg)(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	if _, err := h(msg); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"publish t", "process"} {
		spans := spansNamed(rec, name)
		if len(spans) != 1 {
			t.Fatalf("got %d %q spans, want 1", len(spans), name)
		}
		got := attrs(spans[0])
		if v := got["app.message.type"]; v.AsString() != "payment.RefundPayment" {
			t.Errorf("%s: got app.message.type %q, want payment.RefundPayment", name, v.AsString())
		}
		if v, ok := got["order.id"]; ok {
			t.Errorf("%s: got order.id %q for a message without correlation_id, want none", name, v.AsString())
		}
	}
}

// TestReplayEvent: a message replayed from the dead-letter store
// (backend.MetadataReplayedFrom) gets an EventReplay naming the dead
// letter, when it was replayed and why it had been dead-lettered, on each
// delivery; any other message gets none.
func TestReplayEvent(t *testing.T) {
	const at = "2026-03-01T10:00:14.5Z"
	tests := []struct {
		name      string
		metadata  map[string]string
		wantEvent bool
		want      []attribute.KeyValue
		wantRetry bool
	}{
		{name: "ordinary message"},
		{
			name:     "dead letter reason without a replay",
			metadata: map[string]string{backend.MetadataDeadLetterReason: "max attempts"},
		},
		{
			name: "replay",
			metadata: map[string]string{
				backend.MetadataReplayedFrom: "12", backend.MetadataReplayedAt: at,
				backend.MetadataDeadLetterReason: "max attempts",
			},
			wantEvent: true,
			want: []attribute.KeyValue{
				tracing.ReplayDeadLetterIDKey.Int64(12), tracing.ReplayTimeKey.String(at),
				tracing.DeadLetterReasonKey.String("max attempts"),
			},
		},
		{
			name: "retry of a replay",
			metadata: map[string]string{
				backend.MetadataReplayedFrom: "12", backend.MetadataReplayedAt: at,
				backend.MetadataDeadLetterReason: "permanent", tracing.MetadataAttempt: "2",
			},
			wantEvent: true,
			want: []attribute.KeyValue{
				tracing.ReplayDeadLetterIDKey.Int64(12), tracing.ReplayTimeKey.String(at),
				tracing.DeadLetterReasonKey.String("permanent"),
			},
			wantRetry: true,
		},
		{
			name:      "replay of a dead letter without a reason",
			metadata:  map[string]string{backend.MetadataReplayedFrom: "7", backend.MetadataReplayedAt: at},
			wantEvent: true,
			want:      []attribute.KeyValue{tracing.ReplayDeadLetterIDKey.Int64(7), tracing.ReplayTimeKey.String(at)},
		},
		{
			name:      "replay stamp written by hand",
			metadata:  map[string]string{backend.MetadataReplayedFrom: "dl-7"},
			wantEvent: true,
			want:      []attribute.KeyValue{tracing.ReplayDeadLetterIDKey.String("dl-7")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp, rec := newTracing(t)
			msg := message.NewMessage(watermill.NewUUID(), nil)
			for k, v := range tc.metadata {
				msg.Metadata.Set(k, v)
			}
			h := tracing.Middleware(tracing.Config{TracerProvider: tp})(func(*message.Message) ([]*message.Message, error) { return nil, nil })
			if _, err := h(msg); err != nil {
				t.Fatal(err)
			}
			spans := spansNamed(rec, "process")
			if len(spans) != 1 {
				t.Fatalf("got %d process spans, want 1", len(spans))
			}
			ev, ok := eventNamed(spans[0], tracing.EventReplay)
			if ok != tc.wantEvent {
				t.Fatalf("got replay event %v, want %v (events %v)", ok, tc.wantEvent, spans[0].Events())
			}
			if ok && !slices.Equal(ev.Attributes, tc.want) {
				t.Errorf("replay event: got attributes %v, want %v", ev.Attributes, tc.want)
			}
			if _, ok := eventNamed(spans[0], tracing.EventRetry); ok != tc.wantRetry {
				t.Errorf("got retry event %v, want %v", ok, tc.wantRetry)
			}
		})
	}
}

func TestRecordDeadLetter(t *testing.T) {
	tp, rec := newTracing(t)
	lastErr := errors.New("gateway down")
	h := tracing.Middleware(tracing.Config{TracerProvider: tp})(func(msg *message.Message) ([]*message.Message, error) {
		// What the dead-letter middleware does: store the message, record
		// why, and ack it.
		tracing.RecordDeadLetter(msg.Context(), "max attempts", lastErr)
		return nil, nil
	})
	if _, err := h(message.NewMessage(watermill.NewUUID(), nil)); err != nil {
		t.Fatalf("handler: %v", err)
	}

	spans := spansNamed(rec, "process")
	if len(spans) != 1 {
		t.Fatalf("got %d process spans, want 1", len(spans))
	}
	s := spans[0]
	if got := s.Status(); got.Code != codes.Error || got.Description != "max attempts: gateway down" {
		t.Errorf("got status %v %q, want %v %q", got.Code, got.Description, codes.Error, "max attempts: gateway down")
	}
	ev, ok := eventNamed(s, tracing.EventDeadLetter)
	if !ok {
		t.Fatalf("got events %v, want a %q event", s.Events(), tracing.EventDeadLetter)
	}
	if want := tracing.DeadLetterReasonKey.String("max attempts"); len(ev.Attributes) != 1 || ev.Attributes[0] != want {
		t.Errorf("got event attributes %v, want [%v]", ev.Attributes, want)
	}
	// The last error is recorded as on any failed attempt, and the
	// reason is the span's error.type, so a search by error.type finds
	// the dead letters.
	if ev, ok := eventNamed(s, "exception"); !ok || !slices.Contains(ev.Attributes, attribute.String("exception.message", "gateway down")) {
		t.Errorf("got events %v, want an exception event with message %q", s.Events(), "gateway down")
	}
	if got, ok := attrs(s)["error.type"]; !ok || got.AsString() != "max attempts" {
		t.Errorf("got error.type %v (set: %v), want %q", got.AsString(), ok, "max attempts")
	}

	// Without a span it is a no-op.
	tracing.RecordDeadLetter(context.Background(), "no span", nil)
}

// An error that names its class (tracing.ErrorTyper, as the retry
// middleware's do) gives the span its error.type; another one its Go type.
func TestErrorTypeOfAFailedAttempt(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"classed, wrapped", fmt.Errorf("attempt 2: %w", classed{errors.New("boom"), "transient"}), "transient"},
		{"plain", errors.New("boom"), "*errors.errorString"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp, rec := newTracing(t)
			h := tracing.Middleware(tracing.Config{TracerProvider: tp})(func(*message.Message) ([]*message.Message, error) {
				return nil, tc.err
			})
			_, _ = h(message.NewMessage(watermill.NewUUID(), nil))
			spans := spansNamed(rec, "process")
			if len(spans) != 1 {
				t.Fatalf("got %d process spans, want 1", len(spans))
			}
			if got := attrs(spans[0])["error.type"]; got.AsString() != tc.want {
				t.Errorf("got error.type %q, want %q", got.AsString(), tc.want)
			}
		})
	}
}

// classed is an error with a class for error.type.
type classed struct {
	error
	class string
}

func (c classed) ErrorType() string { return c.class }

func TestMiddlewarePanic(t *testing.T) {
	tp, rec := newTracing(t)
	h := tracing.Middleware(tracing.Config{TracerProvider: tp})(func(*message.Message) ([]*message.Message, error) {
		panic("kaput")
	})
	func() {
		defer func() {
			if r := recover(); r != "kaput" {
				t.Errorf("got panic %v, want %q", r, "kaput")
			}
		}()
		_, _ = h(message.NewMessage(watermill.NewUUID(), nil))
	}()
	spans := spansNamed(rec, "process")
	if len(spans) != 1 {
		t.Fatalf("got %d ended process spans, want 1", len(spans))
	}
	if got := spans[0].Status(); got.Code != codes.Error || got.Description != "panic: kaput" {
		t.Errorf("got status %v %q, want %v %q", got.Code, got.Description, codes.Error, "panic: kaput")
	}
}

func TestInjectExtract(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3},
		SpanID:     trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled,
	})
	ts, err := trace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	sc = sc.WithTraceState(ts)
	member, err := baggage.NewMember("order_id", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), sc), bag)

	tests := []struct {
		name   string
		inject func(context.Context, *message.Message)
		extrac func(context.Context, *message.Message) context.Context
	}{
		{name: "package functions", inject: tracing.Inject, extrac: tracing.Extract},
		{name: "zero config", inject: tracing.Config{}.Inject, extrac: tracing.Config{}.Extract},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := message.NewMessage("m-1", nil)
			tc.inject(ctx, msg)

			wantTP := "00-01020300000000000000000000000000-0405060000000000-01"
			if got := msg.Metadata.Get(tracing.MetadataTraceParent); got != wantTP {
				t.Errorf("got traceparent %q, want %q", got, wantTP)
			}
			if got, want := msg.Metadata.Get(tracing.MetadataTraceState), "vendor=abc"; got != want {
				t.Errorf("got tracestate %q, want %q", got, want)
			}

			out := tc.extrac(context.Background(), msg)
			got := trace.SpanContextFromContext(out)
			if !got.Equal(sc.WithRemote(true)) {
				t.Errorf("got span context %v, want %v", got, sc.WithRemote(true))
			}
			if got, want := baggage.FromContext(out).Member("order_id").Value(), "o-1"; got != want {
				t.Errorf("got baggage order_id %q, want %q", got, want)
			}
		})
	}
}

func TestMetadataCarrier(t *testing.T) {
	md := message.Metadata{}
	c := tracing.MetadataCarrier(md)
	c.Set("traceparent", "v")
	if got, want := md.Get("traceparent"), "v"; got != want {
		t.Errorf("got %q in metadata, want %q", got, want)
	}
	if got, want := c.Get("missing"), ""; got != want {
		t.Errorf("got %q for a missing key, want %q", got, want)
	}
	if got := c.Keys(); len(got) != 1 || got[0] != "traceparent" {
		t.Errorf("got keys %v, want [traceparent]", got)
	}
}
