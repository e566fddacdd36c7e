package app_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/order/internal/adapters"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
	"github.com/orderflow/orderflow/services/order/internal/ordertest"
)

// spanContext returns ctx carrying a remote span of the given hex ids, as a
// consumer or server span of another process would.
func spanContext(t *testing.T, traceID, spanID string, flags trace.TraceFlags) context.Context {
	t.Helper()
	tid, err := trace.TraceIDFromHex(traceID)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := trace.SpanIDFromHex(spanID)
	if err != nil {
		t.Fatal(err)
	}
	return trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true,
	}))
}

// endedSpan returns the one ended span named name.
func endedSpan(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("spans named %q: got %d, want 1", name, len(found))
	}
	return found[0]
}

func linksTo(links []sdktrace.Link, sc trace.SpanContext) bool {
	return slices.ContainsFunc(links, func(l sdktrace.Link) bool {
		return l.SpanContext.TraceID() == sc.TraceID() && l.SpanContext.SpanID() == sc.SpanID()
	})
}

// A cancellation arrives in a request of its own trace; what it decides
// (the compensations, the deadline after them) stays in the order's trace,
// and the two traces are linked both ways.
func TestCancelStaysInTheOrdersTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	logs := &ordertest.Logs{}
	env := ordertest.New(t, ordertest.Options{App: app.Options{TracerProvider: tp, Logger: slog.New(logs)}})

	const orderTrace = "0af7651916cd43dd8448eb211c80319c"
	placed, err := env.App.Commands.PlaceOrder.Handle(spanContext(t, orderTrace, "b7ad6b7169203331", trace.FlagsSampled),
		app.PlaceOrder{CustomerID: "c-1", Items: []app.Line{{SKU: "SKU-1", Quantity: 2}}})
	if err != nil {
		t.Fatalf("place: %v", err)
	}
	id := placed.OrderID
	const replySpan = "00f067aa0ba902b7"
	if _, err := env.App.Commands.HandleReply.Handle(spanContext(t, orderTrace, replySpan, trace.FlagsSampled), app.HandleReply{
		MessageID: "m-1", Reply: contracts.StockReserved{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}},
	}); err != nil {
		t.Fatalf("reply: %v", err)
	}

	reqCtx, request := tp.Tracer("test").Start(context.Background(), "POST /orders/:id/cancel")
	if _, err := env.App.Commands.CancelOrder.Handle(reqCtx, app.CancelOrder{OrderID: id, RequestID: "req-2"}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	request.End()

	cancel := endedSpan(t, rec, "order cancel")
	if got := cancel.SpanContext().TraceID().String(); got != orderTrace {
		t.Errorf("cancel span's trace: got %s, want the order's %s", got, orderTrace)
	}
	if got := cancel.Parent().SpanID().String(); got != replySpan {
		t.Errorf("cancel span's parent: got %s, want the latest decision's span %s", got, replySpan)
	}
	if !linksTo(cancel.Links(), request.SpanContext()) {
		t.Errorf("cancel span's links: got %v, want one to the request's span", cancel.Links())
	}
	if req := endedSpan(t, rec, "POST /orders/:id/cancel"); !linksTo(req.Links(), cancel.SpanContext()) {
		t.Errorf("request span's links: got %v, want one to the cancel span", req.Links())
	}
	// Its log line names the order's trace, where the cancel span is.
	if got := logs.TraceIDs("order cancellation requested"); !slices.Equal(got, []string{orderTrace}) {
		t.Errorf("trace of the cancellation's log line: got %q, want the order's [%s]", got, orderTrace)
	}

	want := "00-" + orderTrace + "-" + cancel.SpanContext().SpanID().String() + "-01"
	var released bool
	for _, m := range env.Outbox() {
		if m.Message.MessageType() != contracts.TypeReleaseStock {
			continue
		}
		released = true
		if got := m.Metadata["traceparent"]; got != want {
			t.Errorf("ReleaseStock traceparent: got %q, want %q", got, want)
		}
	}
	if !released {
		t.Fatal("outbox: no ReleaseStock")
	}

	// The compensation's deadline carries the cancel span: a timeout after
	// it is its child, still in the order's trace.
	env.Clock.Advance(ordertest.StepTimeout + time.Second)
	if res, err := env.App.Commands.FireTimeouts.Handle(context.Background(), app.FireTimeouts{}); err != nil || res.Fired != 1 {
		t.Fatalf("fire: got %+v, %v, want 1 fired", res, err)
	}
	timeout := endedSpan(t, rec, "order timeout")
	if got := timeout.Parent(); got.TraceID().String() != orderTrace || got.SpanID() != cancel.SpanContext().SpanID() {
		t.Errorf("timeout span's parent: got %s/%s, want the cancel span %s/%s",
			got.TraceID(), got.SpanID(), orderTrace, cancel.SpanContext().SpanID())
	}
	// It says what timed out (the compensation the cancellation awaited),
	// by when, and what it did.
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range timeout.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	if got := attrs["order.timeout.status"].AsString(); got != string(domain.StatusCancelling) {
		t.Errorf("order.timeout.status: got %q, want %s", got, domain.StatusCancelling)
	}
	if _, err := time.Parse(time.RFC3339Nano, attrs["order.timeout.deadline"].AsString()); err != nil {
		t.Errorf("order.timeout.deadline: got %q, want an RFC 3339 time (%v)", attrs["order.timeout.deadline"].AsString(), err)
	}
	if got := attrs["order.timeout.commands"].AsInt64(); got < 1 {
		t.Errorf("order.timeout.commands: got %d, want the compensations it sent again", got)
	}
}

// An order whose trace was not sampled gets no sampled spans from the
// service's own later decisions: the timeout's span is not recorded and
// the compensations it sends carry the unsampled flag.
func TestTimeoutOfAnUnsampledOrderStaysUnsampled(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	env := ordertest.New(t, ordertest.Options{App: app.Options{TracerProvider: tp}})

	const orderTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	placed, err := env.App.Commands.PlaceOrder.Handle(spanContext(t, orderTrace, "b7ad6b7169203331", 0),
		app.PlaceOrder{CustomerID: "c-1", Items: []app.Line{{SKU: "SKU-1", Quantity: 2}}})
	if err != nil {
		t.Fatalf("place: %v", err)
	}
	before := len(env.Outbox())
	env.Clock.Advance(ordertest.StepTimeout + time.Second)
	if res, err := env.App.Commands.FireTimeouts.Handle(context.Background(), app.FireTimeouts{}); err != nil || res.Fired != 1 {
		t.Fatalf("fire: got %+v, %v, want 1 fired", res, err)
	}
	if got := len(rec.Ended()); got != 0 {
		t.Errorf("recorded spans: got %d (%s first), want none", got, rec.Ended()[0].Name())
	}
	sent := env.Outbox()[before:]
	if len(sent) == 0 {
		t.Fatalf("outbox: the timeout of order %s sent nothing", placed.OrderID)
	}
	for _, m := range sent {
		if tp := m.Metadata["traceparent"]; !strings.HasPrefix(tp, "00-"+orderTrace+"-") || !strings.HasSuffix(tp, "-00") {
			t.Errorf("%s traceparent: got %q, want the order's trace, not sampled (-00)", m.Message.MessageType(), tp)
		}
	}
}

// armedConflicts makes the first SaveOrder of an InTx fail with a
// conflict once armed, as if another writer had appended first.
type armedConflicts struct {
	app.Transactor
	armed atomic.Bool
}

func (c *armedConflicts) InTx(ctx context.Context, fn app.TxFunc) error {
	return c.Transactor.InTx(ctx, func(ctx context.Context, tx app.Tx) error {
		return fn(ctx, &armedConflictTx{Tx: tx, armed: &c.armed})
	})
}

type armedConflictTx struct {
	app.Tx
	armed *atomic.Bool
}

func (t *armedConflictTx) SaveOrder(ctx context.Context, o *domain.Order, meta app.EventMetadata, at time.Time) error {
	if t.armed.CompareAndSwap(true, false) {
		return &adapters.ConflictError{StreamID: o.ID(), Expected: o.Version(), Actual: o.Version() + 1}
	}
	return t.Tx.SaveOrder(ctx, o, meta, at)
}

// A cancellation retried after a conflict is one "order cancel" span, and
// the request's span links to it once.
func TestCancelRetriedAfterAConflictIsOneSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var conflicts *armedConflicts
	env := ordertest.New(t, ordertest.Options{
		App: app.Options{TracerProvider: tp},
		WrapTransactor: func(tx app.Transactor) app.Transactor {
			conflicts = &armedConflicts{Transactor: tx}
			return conflicts
		},
	})
	placed, err := env.App.Commands.PlaceOrder.Handle(spanContext(t, "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", trace.FlagsSampled),
		app.PlaceOrder{CustomerID: "c-1", Items: []app.Line{{SKU: "SKU-1", Quantity: 2}}})
	if err != nil {
		t.Fatalf("place: %v", err)
	}
	id := placed.OrderID
	conflicts.armed.Store(true)
	reqCtx, request := tp.Tracer("test").Start(context.Background(), "POST /orders/:id/cancel")
	if _, err := env.App.Commands.CancelOrder.Handle(reqCtx, app.CancelOrder{OrderID: id}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	request.End()
	if conflicts.armed.Load() {
		t.Fatal("the conflict was never injected")
	}
	endedSpan(t, rec, "order cancel") // exactly one
	if got := len(endedSpan(t, rec, "POST /orders/:id/cancel").Links()); got != 1 {
		t.Errorf("request span links: got %d, want 1", got)
	}
}

// staleDeadlines is a deadline index that still lists one deadline as
// due after the order moved on: what a timeout round can read while a
// reply is being applied.
type staleDeadlines struct{ dl app.Deadline }

func (s staleDeadlines) DueDeadlines(context.Context, time.Time, app.DeadlinePosition, int) ([]app.Deadline, error) {
	return []app.Deadline{s.dl}, nil
}

// A timeout that finds its order no longer waiting past its deadline
// does nothing, and its span says so: it is not a step that timed out.
func TestATimeoutWithNothingToDoSaysSo(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	env := ordertest.New(t, ordertest.Options{App: app.Options{TracerProvider: tp}})
	placed, err := env.App.Commands.PlaceOrder.Handle(context.Background(),
		app.PlaceOrder{CustomerID: "c-1", Items: []app.Line{{SKU: "SKU-1", Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	before := len(env.Outbox())
	h, err := app.NewFireTimeoutsHandler(env.Store, staleDeadlines{app.Deadline{OrderID: placed.OrderID, Due: env.Clock.Now()}},
		app.Options{TracerProvider: tp, Clock: env.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Handle(context.Background(), app.FireTimeouts{})
	if err != nil || res.Due != 1 || res.Fired != 0 {
		t.Fatalf("fire a deadline not yet reached: got %+v, %v; want 1 due, none fired", res, err)
	}
	if got := len(env.Outbox()); got != before {
		t.Errorf("outbox: got %d messages, want %d (nothing sent)", got, before)
	}
	s := endedSpan(t, rec, "order timeout")
	var said bool
	for _, e := range s.Events() {
		said = said || strings.HasPrefix(e.Name, "nothing to do")
	}
	if !said {
		t.Errorf("timeout span's events: got %v, want one saying there was nothing to do", s.Events())
	}
	for _, kv := range s.Attributes() {
		if kv.Key == "order.timeout.commands" && kv.Value.AsInt64() != 0 {
			t.Errorf("order.timeout.commands: got %d, want 0", kv.Value.AsInt64())
		}
	}
}
