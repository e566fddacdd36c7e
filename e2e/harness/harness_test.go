package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The receiver decodes what the OpenTelemetry SDK's OTLP/HTTP exporter
// sends, plain and gzip-compressed, into spans with their resource's
// service.name, parent links, events, attributes and status.
func TestReceiverDecodesTheSDKExporter(t *testing.T) {
	r, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, compression := range []otlptracehttp.Compression{otlptracehttp.NoCompression, otlptracehttp.GzipCompression} {
		ctx := context.Background()
		exp, err := otlptracehttp.New(ctx,
			otlptracehttp.WithEndpointURL(r.Endpoint()+"/v1/traces"),
			otlptracehttp.WithCompression(compression))
		if err != nil {
			t.Fatal(err)
		}
		res := resource.NewSchemaless(attribute.String("service.name", "payment"))
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(res))
		tracer := tp.Tracer("test")
		ctx, parent := tracer.Start(ctx, "publish payment.commands", trace.WithSpanKind(trace.SpanKindProducer))
		_, child := tracer.Start(ctx, "process payment.commands", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.Int("messaging.delivery.attempt", 2)))
		child.AddEvent("retry", trace.WithAttributes(attribute.Int("messaging.delivery.attempt", 2)))
		child.SetStatus(codes.Error, "max attempts")
		child.End()
		parent.End()
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}

		traceID := parent.SpanContext().TraceID().String()
		spans := r.Trace(traceID)
		if len(spans) != 2 {
			t.Fatalf("compression %d: got %d spans of trace %s, want 2 (failures: %v)", compression, len(spans), traceID, r.Failures())
		}
		tree := NewTree(spans)
		c, ok := tree.Span(child.SpanContext().SpanID().String())
		if !ok {
			t.Fatalf("child span missing from %v", spans)
		}
		p, ok := tree.Parent(c)
		switch {
		case !ok || p.Name != "publish payment.commands" || p.Kind != "PRODUCER":
			t.Errorf("parent of %v: got %v, want the PRODUCER span", c, p)
		case c.Service != "payment" || c.Kind != "CONSUMER":
			t.Errorf("child: got %v, want payment's CONSUMER span", c)
		case !c.Error || c.StatusMsg != "max attempts" || !c.HasEvent("retry") || c.Attrs["messaging.delivery.attempt"] != "2":
			t.Errorf("child: got %+v, want an error with a retry event at attempt 2", c)
		case len(tree.Roots()) != 1 || len(tree.Orphans()) != 0 || !tree.DescendsFrom(c, p.SpanID):
			t.Errorf("tree: roots %v, orphans %v", tree.Roots(), tree.Orphans())
		}
		if d := tree.Dump(); !strings.Contains(d, "  - [payment] CONSUMER process payment.commands ERROR(max attempts) event:retry attempt=2") {
			t.Errorf("dump:\n%s", d)
		}
	}
	if len(r.Failures()) > 0 {
		t.Errorf("refused requests: %v", r.Failures())
	}
}

// A sender killed mid-request leaves a body that ends early: counted as
// aborted, not as a refused request (which fails every e2e test). A
// complete body that does not decode is still refused.
func TestReceiverCountsCutOffRequestsAsAborted(t *testing.T) {
	r, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	send := func(declared int, body string) {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(r.Endpoint(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", declared, body)
		if declared == len(body) {
			_, _ = io.ReadAll(conn) // wait for the answer
		}
		_ = conn.Close()
	}
	send(100, "0123456789") // the sender dies after 10 of 100 bytes
	send(3, "\xff\xff\xff") // complete, and not protobuf
	deadline := time.Now().Add(5 * time.Second)
	for r.Aborted() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.Aborted(); got != 1 {
		t.Errorf("aborted requests: got %d, want 1", got)
	}
	if got := r.Failures(); len(got) != 1 || !strings.HasPrefix(got[0], "decode:") {
		t.Errorf("refused requests: got %q, want one decode failure", got)
	}
}

func TestMetricSamples(t *testing.T) {
	text := `# HELP orderflow_messages_handled_total Messages handled.
# TYPE orderflow_messages_handled_total counter
orderflow_messages_handled_total{outcome="ok",type="payment.ChargePayment"} 7
orderflow_messages_handled_total{outcome="duplicate",type="payment.ChargePayment"} 2
orderflow_messages_handled_total_other 9
orderflow_messages_handled_totalx{outcome="duplicate"} 5
`
	got := MetricSamples(text, "orderflow_messages_handled_total")
	if len(got) != 2 || got[1].Labels["outcome"] != "duplicate" || got[1].Value != 2 || got[0].Labels["type"] != "payment.ChargePayment" {
		t.Errorf("got %+v, want the two samples of the counter", got)
	}
}

func TestViolations(t *testing.T) {
	done := time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
	placed := done.Add(-time.Second)
	ok := Snapshot{
		Orders: []Order{
			{ID: "a", Status: StatusCompleted, TotalCents: 300, PaymentID: "p-a", ShipmentID: "s-a",
				Items: []OrderItem{{SKU: "X", Quantity: 2}}, PlacedAt: placed, FinishedAt: &done},
			{ID: "b", Status: StatusCancelled, TotalCents: 100, Items: []OrderItem{{SKU: "X", Quantity: 1}}, PlacedAt: placed, FinishedAt: &done},
		},
		Inventory: InventoryState{Conserved: true, Stock: []Stock{{SKU: "X", Available: 8, Reserved: 2, Initial: 10}},
			Reservations: map[string]int{"RESERVED": 1, "RELEASED": 1}},
		Payments: []Payment{
			{PaymentID: "p-a", OrderID: "a", AmountCents: 300, Status: "CHARGED"},
			{PaymentID: "p-b", OrderID: "b", AmountCents: 100, Status: "REFUNDED"},
		},
		Ledger: []LedgerEntry{
			{PaymentID: "p-a", OrderID: "a", Kind: "charge", AmountCents: 300},
			{PaymentID: "p-b", OrderID: "b", Kind: "charge", AmountCents: 100},
			{PaymentID: "p-b", OrderID: "b", Kind: "refund", AmountCents: -100},
		},
		PaymentState: PaymentState{Payments: map[string]int{"CHARGED": 1, "REFUNDED": 1}, ChargedCents: 400, RefundedCents: 100,
			NetCents: 300, OutstandingCents: 300, Consistent: true},
		Shipments: []Shipment{{ShipmentID: "s-a", OrderID: "a", Status: "SCHEDULED"}},
		Gateway: []ProviderRecord{
			{OrderID: "a", Outcome: "ACCEPTED", Reference: "p-a", AmountCents: 300, Requests: 1},
			{OrderID: "b", Outcome: "ACCEPTED", Reference: "p-b", AmountCents: 100, Cancelled: true, Requests: 1, Cancels: 1},
		},
		Carrier:        []ProviderRecord{{OrderID: "a", Outcome: "ACCEPTED", Reference: "s-a", Requests: 1}},
		ShipmentCounts: map[string]int{"SCHEDULED": 1},
		Catalog:        []Product{{SKU: "X", UnitPriceCents: 150, InitialStock: 10}},
	}
	if v := ok.Violations(Expect{Orders: 2, IDs: []string{"a", "b"}, Deadline: time.Minute}); len(v) != 0 {
		t.Fatalf("a consistent snapshot: got violations %v", v)
	}

	tests := []struct {
		name   string
		change func(s *Snapshot)
		exp    Expect
		want   string
	}{
		{"lost order", func(s *Snapshot) {}, Expect{Orders: 3}, "orders: got 2, want 3"},
		{"lost order, another made up", func(s *Snapshot) {}, Expect{Orders: 2, IDs: []string{"a", "c"}}, "order c was acknowledged but is missing"},
		{"stock not seeded", func(s *Snapshot) { s.Inventory.Stock = nil }, Expect{}, "stock X: missing from inventory"},
		{"late order", func(s *Snapshot) {}, Expect{Deadline: time.Millisecond}, "took 1s"},
		{"in flight", func(s *Snapshot) { s.Orders[1].Status = StatusCancelling }, Expect{}, "want a terminal status"},
		{"negative stock", func(s *Snapshot) { s.Inventory.Stock[0].Available, s.Inventory.Stock[0].Reserved = -1, 11 }, Expect{}, "negative"},
		{"leaked reservation", func(s *Snapshot) { s.Inventory.Stock[0].Available, s.Inventory.Stock[0].Reserved = 7, 3 }, Expect{}, "COMPLETED orders hold 2"},
		{"double charge", func(s *Snapshot) {
			s.Ledger = append(s.Ledger, LedgerEntry{OrderID: "a", Kind: "charge", AmountCents: 300})
		}, Expect{}, "order a charged 2 times"},
		{"unrefunded cancel", func(s *Snapshot) { s.Payments[1].Status = "CHARGED"; s.Ledger = s.Ledger[:2] }, Expect{}, "not refunded"},
		{"a refund at the gateway missing from the ledger", func(s *Snapshot) { s.Ledger = s.Ledger[:2] }, Expect{},
			"the gateway refunded p-b 100 cents, the ledger records a refund of 0"},
		{"shipment of a cancelled order", func(s *Snapshot) {
			s.Shipments = append(s.Shipments, Shipment{OrderID: "b", Status: "SCHEDULED"})
		}, Expect{}, "still SCHEDULED"},
		{"queue not drained", func(s *Snapshot) {
			s.Queue = []TopicStats{{Topic: "payment.commands", Groups: []GroupStats{{ConsumerGroup: "payment", Depth: 1}}}}
		}, Expect{}, "1 messages of payment.commands left"},
		{"dead letter", func(s *Snapshot) { s.DeadLetters = []DeadLetter{{ID: 1, Topic: "payment.events"}} }, Expect{}, "dead letter 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			s.Orders = append([]Order(nil), ok.Orders...)
			s.Inventory.Stock = append([]Stock(nil), ok.Inventory.Stock...)
			s.Payments = append([]Payment(nil), ok.Payments...)
			s.Ledger = append([]LedgerEntry(nil), ok.Ledger...)
			s.Shipments = append([]Shipment(nil), ok.Shipments...)
			tc.change(&s)
			v := s.Violations(tc.exp)
			if !strings.Contains(strings.Join(v, "\n"), tc.want) {
				t.Errorf("got violations %v, want one containing %q", v, tc.want)
			}
		})
	}
}
