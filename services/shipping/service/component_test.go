package service_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicehost/hosttest"
	"github.com/orderflow/orderflow/services/shipping/internal/app"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
	"github.com/orderflow/orderflow/services/shipping/service"
)

// harness is the service running in hosttest's harness, plus the helpers
// below.
type harness struct{ *hosttest.Harness }

// start runs the shipping service on a fresh queue and database.
func start(t *testing.T) harness {
	return harness{hosttest.Start(t, hosttest.Config{Name: service.Name, Events: contracts.TopicShippingEvents,
		New: service.New})}
}

func schedule(order string) contracts.ScheduleShipment {
	return contracts.ScheduleShipment{
		OrderID: order,
		Items:   []contracts.Item{{SKU: "SKU-1", Quantity: 2}},
		Address: contracts.Address{Name: "Ada Lovelace", Line1: "12 St James's Square", City: "London", Country: "GB"},
	}
}

func (h harness) state() app.State {
	h.T.Helper()
	var st app.State
	h.GetOK("/state", &st)
	return st
}

func TestScheduleCancelAndDuplicates(t *testing.T) {
	h := start(t)

	id := h.Publish(schedule("o-1"), "")
	m, msg := h.Next()
	sched, ok := m.(contracts.ShipmentScheduled)
	if !ok || sched.ShipmentID == "" || sched.TrackingNumber == "" {
		t.Fatalf("event: got %#v, want ShipmentScheduled with an id and tracking number", m)
	}
	h.SameTrace(msg)
	if c := msg.Metadata.Get(contracts.MetadataCausationID); c != id {
		t.Errorf("causation_id: got %q, want %q", c, id)
	}

	h.Publish(schedule("o-1"), id) // redelivery: processed once
	h.Publish(schedule("o-1"), "") // repeated command: same answer
	m, _ = h.Next()
	if again, ok := m.(contracts.ShipmentScheduled); !ok || again.ShipmentID != sched.ShipmentID {
		t.Fatalf("repeated schedule: got %#v, want ShipmentScheduled %s again", m, sched.ShipmentID)
	}
	h.Quiet(200 * time.Millisecond)

	for range 2 {
		h.Publish(contracts.CancelShipment{OrderID: "o-1", Reason: "customer"}, "")
		m, _ := h.Next()
		if c, ok := m.(contracts.ShipmentCancelled); !ok || c.ShipmentID != sched.ShipmentID {
			t.Fatalf("cancel: got %#v, want ShipmentCancelled %s", m, sched.ShipmentID)
		}
	}
	var list []domain.Shipment
	h.GetJSON("/shipments?order_id=o-1", &list)
	if len(list) != 1 || list[0].Status != domain.StatusCancelled || list[0].Address.City != "London" {
		t.Errorf("shipments: got %+v, want one CANCELLED shipment to London", list)
	}
}

func TestCancelBeforeScheduleAndFailures(t *testing.T) {
	h := start(t)

	h.Publish(contracts.CancelShipment{OrderID: "o-early"}, "")
	m, _ := h.Next()
	if c, ok := m.(contracts.ShipmentCancelled); !ok || c.ShipmentID != "" {
		t.Fatalf("cancel of nothing: got %#v, want ShipmentCancelled without id", m)
	}
	h.Publish(schedule("o-early"), "")
	if m, _ := h.Next(); m.MessageType() != contracts.TypeShipmentFailed {
		t.Fatalf("late schedule: got %#v, want ShipmentFailed", m)
	}

	if code := h.Send(http.MethodPut, "/faults/"+faults.ShippingFailureRate, `{"value":1}`); code != 200 {
		t.Fatalf("PUT failure rate: got %d", code)
	}
	h.Publish(schedule("o-refused"), "")
	m, _ = h.Next()
	if f, ok := m.(contracts.ShipmentFailed); !ok || f.Reason == "" {
		t.Fatalf("refused: got %#v, want ShipmentFailed with a reason", m)
	}
	if st := h.state(); st.Shipments[domain.StatusFailed] != 1 || st.Shipments[domain.StatusVoided] != 1 {
		t.Errorf("state: got %+v, want 1 FAILED and 1 VOIDED", st)
	}
}

func TestUndecodableMessageIsDeadLettered(t *testing.T) {
	h := start(t)
	id := h.PublishRaw(contracts.TopicShippingCommands, contracts.TypeScheduleShipment)
	h.WaitDeadLetter(contracts.TopicShippingCommands, id, 1)
	h.Poison()
}

func TestCrashMidHandlerSchedulesOnce(t *testing.T) {
	h := start(t)
	h.CrashOnce(faults.CrashMidHandler, schedule("o-crash"), contracts.TypeShipmentScheduled)
	if st := h.state(); st.Shipments[domain.StatusScheduled] != 1 {
		t.Errorf("state: got %+v, want one scheduled shipment", st)
	}
}
