package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// sagaHops are the messages of a completed order's saga: each is published
// by one service and processed by another, in this order.
var sagaHops = []struct{ topic, producer, consumer, msgType string }{
	{"inventory.commands", harness.OrderService, harness.InventoryService, "inventory.ReserveStock"},
	{"inventory.events", harness.InventoryService, harness.OrderService, "inventory.StockReserved"},
	{"payment.commands", harness.OrderService, harness.PaymentService, "payment.ChargePayment"},
	{"payment.events", harness.PaymentService, harness.OrderService, "payment.PaymentCharged"},
	{"shipping.commands", harness.OrderService, harness.ShippingService, "shipping.ScheduleShipment"},
	{"shipping.events", harness.ShippingService, harness.OrderService, "shipping.ShipmentScheduled"},
}

// completedTrace checks the trace of a COMPLETED order as the OTLP
// receiver got it: one trace id; spans from all four services; the HTTP
// server span POST /orders as the only root; for every hop of the saga a
// "publish <topic>" PRODUCER span of the sender with a "process <topic>"
// CONSUMER child in the receiver, both carrying the order's order.id and
// their message's type; each hop caused by the previous one (its publish
// span descends from the previous hop's process span); no span whose
// parent is missing.
func completedTrace(spans []harness.Span) error {
	tree := harness.NewTree(spans)
	var errs []error
	svc := tree.Services()
	for _, name := range harness.Services {
		if svc[name] == 0 {
			errs = append(errs, fmt.Errorf("no span from %s (got %v)", name, svc))
		}
	}
	roots := tree.Roots()
	if len(roots) != 1 || roots[0].Name != "POST /orders" || roots[0].Kind != "SERVER" || roots[0].Service != harness.OrderService {
		errs = append(errs, fmt.Errorf("roots: got %v, want the order service's SERVER span POST /orders alone", roots))
		return errors.Join(errs...)
	}
	root := roots[0]
	if o := tree.Orphans(); len(o) > 0 {
		errs = append(errs, fmt.Errorf("spans whose parent is missing: %v", o))
	}
	cause := root
	for _, hop := range sagaHops {
		var found *harness.Span
		var why []error
		for _, p := range tree.Find(func(s harness.Span) bool {
			return s.Kind == "CONSUMER" && s.Name == "process "+hop.topic && s.Service == hop.consumer
		}) {
			pub, ok := tree.Parent(p)
			if !ok || pub.Kind != "PRODUCER" || pub.Name != "publish "+hop.topic || pub.Service != hop.producer {
				why = append(why, fmt.Errorf("%s: parent %v, want %s's PRODUCER span publish %s", p, pub, hop.producer, hop.topic))
				continue
			}
			if !tree.DescendsFrom(pub, cause.SpanID) {
				why = append(why, fmt.Errorf("%s does not descend from %s, the span that caused it", pub, cause))
				continue
			}
			found = &p
			break
		}
		if found == nil {
			errs = append(errs, fmt.Errorf("no process %s span of %s under publish %s of %s caused by %s", hop.topic, hop.consumer, hop.topic, hop.producer, cause))
			errs = append(errs, why...)
			return errors.Join(errs...)
		}
		if found.Attrs["messaging.destination.name"] != hop.topic || found.Attrs["messaging.consumer.group.name"] != hop.consumer {
			errs = append(errs, fmt.Errorf("%s: attributes %v, want messaging.destination.name %s and consumer group %s", found, found.Attrs, hop.topic, hop.consumer))
		}
		// Both ends of the hop say which message they carry and which
		// order it is about, as POST /orders does: a search by order.id
		// finds the saga's spans.
		pub, _ := tree.Parent(*found)
		for _, s := range []harness.Span{pub, *found} {
			if s.Attrs["order.id"] != root.Attrs["order.id"] || s.Attrs["orderflow.message.type"] != hop.msgType {
				errs = append(errs, fmt.Errorf("%s: attributes %v, want order.id %s (as POST /orders) and orderflow.message.type %s", s, s.Attrs, root.Attrs["order.id"], hop.msgType))
			}
		}
		// A retried message has one process span per attempt: the hop
		// continues from the attempt that published the next message.
		next := *found
		for _, p := range tree.Find(func(s harness.Span) bool {
			return s.Kind == "CONSUMER" && s.Name == "process "+hop.topic && s.Service == hop.consumer && s.ParentSpanID == found.ParentSpanID
		}) {
			if !p.Error {
				next = p
			}
		}
		cause = next
	}
	return errors.Join(errs...)
}

// checkCompletedTrace waits (up to 30s) for the order's trace to arrive
// whole and checks it with completedTrace.
func checkCompletedTrace(t *testing.T, sys *harness.System, o harness.Order) []harness.Span {
	t.Helper()
	if o.TraceID == "" {
		t.Fatalf("order %s has no trace id", o.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spans, err := sys.Receiver().WaitTrace(ctx, o.TraceID, completedTrace)
	if err != nil {
		t.Errorf("trace of order %s:\n%v\ntrace as received:\n%s", o.ID, err, harness.NewTree(spans).Dump())
	}
	return spans
}
