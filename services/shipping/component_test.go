package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/services/shipping/internal/app"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
)

func schedule(order string) contracts.ScheduleShipment {
	return contracts.ScheduleShipment{
		OrderID: order,
		Items:   []contracts.Item{{SKU: "SKU-1", Quantity: 2}},
		Address: contracts.Address{Name: "Ada Lovelace", Line1: "12 St James's Square", City: "London", Country: "GB"},
	}
}

func (h *harness) state() app.State {
	h.t.Helper()
	var st app.State
	if code := h.getJSON("/state", &st); code != 200 {
		h.t.Fatalf("GET /state: got %d, want 200", code)
	}
	return st
}

func TestScheduleCancelAndDuplicates(t *testing.T) {
	h := start(t)

	id := h.publish(schedule("o-1"), "")
	m, msg := h.next()
	sched, ok := m.(contracts.ShipmentScheduled)
	if !ok || sched.ShipmentID == "" || sched.TrackingNumber == "" {
		t.Fatalf("event: got %#v, want ShipmentScheduled with an id and tracking number", m)
	}
	h.sameTrace(msg)
	if c := msg.Metadata.Get(contracts.MetadataCausationID); c != id {
		t.Errorf("causation_id: got %q, want %q", c, id)
	}

	h.publish(schedule("o-1"), id) // redelivery: processed once
	h.publish(schedule("o-1"), "") // repeated command: same answer
	m, _ = h.next()
	if again, ok := m.(contracts.ShipmentScheduled); !ok || again.ShipmentID != sched.ShipmentID {
		t.Fatalf("repeated schedule: got %#v, want ShipmentScheduled %s again", m, sched.ShipmentID)
	}
	h.quiet(200 * time.Millisecond)

	for range 2 {
		h.publish(contracts.CancelShipment{OrderID: "o-1", Reason: "customer"}, "")
		m, _ := h.next()
		if c, ok := m.(contracts.ShipmentCancelled); !ok || c.ShipmentID != sched.ShipmentID {
			t.Fatalf("cancel: got %#v, want ShipmentCancelled %s", m, sched.ShipmentID)
		}
	}
	var list []domain.Shipment
	h.getJSON("/shipments?order_id=o-1", &list)
	if len(list) != 1 || list[0].Status != domain.StatusCancelled || list[0].Address.City != "London" {
		t.Errorf("shipments: got %+v, want one CANCELLED shipment to London", list)
	}
}

func TestCancelBeforeScheduleAndFailures(t *testing.T) {
	h := start(t)

	h.publish(contracts.CancelShipment{OrderID: "o-early"}, "")
	m, _ := h.next()
	if c, ok := m.(contracts.ShipmentCancelled); !ok || c.ShipmentID != "" {
		t.Fatalf("cancel of nothing: got %#v, want ShipmentCancelled without id", m)
	}
	h.publish(schedule("o-early"), "")
	if m, _ := h.next(); m.MessageType() != contracts.TypeShipmentFailed {
		t.Fatalf("late schedule: got %#v, want ShipmentFailed", m)
	}

	if code := h.send(http.MethodPut, "/faults/"+faults.ShippingFailureRate, `{"value":1}`); code != 200 {
		t.Fatalf("PUT failure rate: got %d", code)
	}
	h.publish(schedule("o-refused"), "")
	m, _ = h.next()
	if f, ok := m.(contracts.ShipmentFailed); !ok || f.Reason == "" {
		t.Fatalf("refused: got %#v, want ShipmentFailed with a reason", m)
	}
	if st := h.state(); st.Shipments[domain.StatusFailed] != 1 || st.Shipments[domain.StatusVoided] != 1 {
		t.Errorf("state: got %+v, want 1 FAILED and 1 VOIDED", st)
	}
}

func TestUndecodableMessageIsDeadLettered(t *testing.T) {
	h := start(t)
	id := h.publishRaw(contracts.TopicShippingCommands, contracts.TypeScheduleShipment)
	h.waitDeadLetter(contracts.TopicShippingCommands, id, 1)
	h.poison()
}

func TestCrashMidHandlerSchedulesOnce(t *testing.T) {
	h := start(t)
	if err := h.reg.Set(faults.CrashMidHandler, "true"); err != nil {
		t.Fatal(err)
	}
	h.publish(schedule("o-crash"), "")
	if m, _ := h.next(); m.MessageType() != contracts.TypeShipmentScheduled {
		t.Fatalf("event: got %s, want ShipmentScheduled", m.MessageType())
	}
	h.quiet(300 * time.Millisecond)
	if got := h.exits.Load(); got != 1 {
		t.Errorf("exits: got %d, want 1", got)
	}
	if st := h.state(); st.Shipments[domain.StatusScheduled] != 1 {
		t.Errorf("state: got %+v, want one scheduled shipment", st)
	}
}
