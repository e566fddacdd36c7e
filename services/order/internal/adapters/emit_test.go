package adapters_test

import (
	"context"
	"maps"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/ordertest"
)

// Emit stores a message as every service's are (servicedb.NewMessage): a
// new id, repeated in message_id; the contract's type, schema version and
// correlation id; the causation id when there is one; and the trace
// context and baggage of ctx (the default propagator). Nothing else.
func TestEmitMetadata(t *testing.T) {
	traceID, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	spanID, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled,
	}))
	bag, err := baggage.Parse("tenant=acme")
	if err != nil {
		t.Fatal(err)
	}
	ctx = baggage.ContextWithBaggage(ctx, bag)

	env := ordertest.New(t, ordertest.Options{})
	msg := contracts.OrderCancelled{OrderID: "o-1", Reason: "customer", CancelledAt: ordertest.Start}
	if err := env.Store.InTx(ctx, func(ctx context.Context, tx app.Tx) error {
		if err := tx.Emit(ctx, msg, "req-1"); err != nil {
			return err
		}
		return tx.Emit(ctx, msg, "") // no causation
	}); err != nil {
		t.Fatalf("emit: %v", err)
	}
	out := env.Outbox()
	if len(out) != 2 {
		t.Fatalf("outbox: got %d messages, want 2", len(out))
	}
	if out[0].UUID == "" || out[0].UUID == out[1].UUID {
		t.Errorf("message ids: got %q and %q, want two distinct ids", out[0].UUID, out[1].UUID)
	}
	for i, causation := range []string{"req-1", ""} {
		m := out[i]
		if m.Topic != contracts.TopicOrderEvents {
			t.Errorf("message %d topic: got %q, want %q", i, m.Topic, contracts.TopicOrderEvents)
		}
		want := map[string]string{
			contracts.MetadataType:          contracts.TypeOrderCancelled,
			contracts.MetadataSchemaVersion: "1",
			contracts.MetadataCorrelationID: "o-1",
			contracts.MetadataMessageID:     m.UUID,
			"traceparent":                   "00-" + traceID.String() + "-" + spanID.String() + "-01",
			"baggage":                       "tenant=acme",
		}
		if causation != "" {
			want[contracts.MetadataCausationID] = causation
		}
		if !maps.Equal(m.Metadata, want) {
			t.Errorf("message %d metadata:\n got %v\nwant %v", i, m.Metadata, want)
		}
	}
}
