package ports_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/ports"
)

// The probes, the API document and paths no route serves are served
// without spans: a health check every few seconds, or a scanner probing
// paths, would bury the orders' traces.
func TestProbesAndTheDocumentAreNotTraced(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	a := newAPI(t, ports.HTTPConfig{TracerProvider: tp, Propagator: propagation.TraceContext{},
		Ready: func(context.Context) error { return nil }})
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json", "/openapi.yaml"} {
		if r := a.do("GET", path, "", nil); r.status != http.StatusOK {
			t.Errorf("GET %s: got %d %s, want 200", path, r.status, r.body)
		}
	}
	for _, path := range []string{"/wp-login.php", "/orders/o-1/nothing"} {
		if r := a.do("GET", path, "", nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s: got %d %s, want 404", path, r.status, r.body)
		}
	}
	if spans := exp.GetSpans(); len(spans) != 0 {
		t.Errorf("spans: got %d (the first %q), want none", len(spans), spans[0].Name)
	}
}

// The span of a request about one order carries the order's id, so that
// Jaeger's tag search finds it, and the server's address and port apart,
// as the semantic conventions have them.
func TestRequestSpansNameTheirOrder(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	a := newAPI(t, ports.HTTPConfig{TracerProvider: tp, Propagator: propagation.TraceContext{}})

	key := map[string]string{"Idempotency-Key": "k-1"}
	placed := a.do("POST", "http://127.0.0.1:8080/orders", validOrder, key)
	if placed.status != http.StatusCreated {
		t.Fatalf("POST /orders: got %d %s, want 201", placed.status, placed.body)
	}
	id := placed.order(t).ID
	if r := a.do("POST", "/orders", validOrder, key); r.status != http.StatusOK {
		t.Fatalf("POST /orders again with its key: got %d %s, want 200", r.status, r.body)
	}
	a.do("GET", "/orders/"+id, "", nil)
	a.do("GET", "/orders/"+id+"/events", "", nil)
	a.do("POST", "/orders", `{"customer_id":"c-1","items":[]}`, nil) // refused: no order
	a.do("GET", "/orders", "", nil)
	// An id spelt with an escape it need not have is the order the
	// handler reads: the decoded one.
	a.do("GET", "/orders/"+strings.Replace(id, "-", "%2D", 1), "", nil)
	a.do("POST", "/orders/"+strings.Replace(id, "-", "%2d", 1)+"/cancel", "", nil)

	want := []struct {
		name    string
		orderID string
	}{
		{"POST /orders", id}, {"POST /orders", id}, {"GET /orders/:id", id}, {"GET /orders/:id/events", id},
		{"POST /orders", ""}, {"GET /orders", ""},
		{"GET /orders/:id", id}, {"POST /orders/:id/cancel", id},
	}
	spans := exp.GetSpans()
	if len(spans) != len(want) {
		t.Fatalf("spans: got %d, want %d", len(spans), len(want))
	}
	for i, w := range want {
		attrs := map[attribute.Key]attribute.Value{}
		for _, kv := range spans[i].Attributes {
			attrs[kv.Key] = kv.Value
		}
		if spans[i].Name != w.name || attrs[app.AttributeOrderID].AsString() != w.orderID {
			t.Errorf("span %d: got %q with order.id %q, want %q with %q",
				i, spans[i].Name, attrs[app.AttributeOrderID].AsString(), w.name, w.orderID)
		}
		if i == 0 && (attrs["server.address"].AsString() != "127.0.0.1" || attrs["server.port"].AsInt64() != 8080) {
			t.Errorf("span %d: got server.address %q, server.port %d; want 127.0.0.1 and 8080",
				i, attrs["server.address"].AsString(), attrs["server.port"].AsInt64())
		}
	}
}
