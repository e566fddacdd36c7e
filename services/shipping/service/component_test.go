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

// shipment is the part of a GET /shipments item the tests read.
type shipment struct {
	ID      string `json:"shipment_id"`
	Status  string `json:"status"`
	Address struct {
		City string `json:"city"`
	} `json:"address"`
}

func (h harness) state() app.State {
	h.T.Helper()
	var st app.State
	h.GetOK("/state", &st)
	return st
}

// carrier returns the simulated carrier's record of order, failing the
// test unless there is exactly one.
func (h harness) carrier(order string) app.CarrierRecord {
	h.T.Helper()
	var recs []app.CarrierRecord
	h.GetOK("/carrier?order_id="+order, &recs)
	if len(recs) != 1 {
		h.T.Fatalf("carrier records of %s: got %+v, want one", order, recs)
	}
	return recs[0]
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
	// The carrier was asked three times (the redelivery too: it comes
	// before the inbox) and booked once.
	if c := h.carrier("o-1"); c.Outcome != "ACCEPTED" || c.Reference != sched.ShipmentID || c.Requests != 3 || c.Cancelled {
		t.Errorf("carrier: got %+v, want one booking %s asked 3 times, not cancelled", c, sched.ShipmentID)
	}

	for range 2 {
		h.Publish(contracts.CancelShipment{OrderID: "o-1", Reason: "customer"}, "")
		m, _ := h.Next()
		if c, ok := m.(contracts.ShipmentCancelled); !ok || c.ShipmentID != sched.ShipmentID {
			t.Fatalf("cancel: got %#v, want ShipmentCancelled %s", m, sched.ShipmentID)
		}
	}
	var list []shipment
	h.GetJSON("/shipments?order_id=o-1", &list)
	if len(list) != 1 || list[0].Status != string(domain.StatusCancelled) || list[0].Address.City != "London" {
		t.Errorf("shipments: got %+v, want one CANCELLED shipment to London", list)
	}
	// The cancellation reached the carrier, once.
	if c := h.carrier("o-1"); !c.Cancelled || c.Cancels != 2 || c.Reference != sched.ShipmentID {
		t.Errorf("carrier after two cancels: got %+v, want %s withdrawn, asked twice", c, sched.ShipmentID)
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
	// The cancellation reached the carrier first and voided the order
	// there, so the late schedule was refused by the carrier, not merely
	// ignored after it booked a parcel.
	if c := h.carrier("o-early"); c.Outcome != "VOIDED" || c.Reference != "" || c.Requests != 1 || c.Cancels != 1 {
		t.Errorf("carrier of o-early: got %+v, want VOIDED with one cancel and one book request, no booking", c)
	}
	if c := h.carrier("o-refused"); c.Outcome != "REFUSED" || c.Reference != "" {
		t.Errorf("carrier of o-refused: got %+v, want REFUSED", c)
	}
}

func TestUndecodableMessageIsDeadLettered(t *testing.T) {
	h := start(t)
	id := h.PublishRaw(contracts.TopicShippingCommands, contracts.TypeScheduleShipment)
	h.WaitDeadLetter(contracts.TopicShippingCommands, id, 1)
	h.Poison()
}

// The lists take ?limit from 1 to 100000; anything else is a 400 naming
// the parameter.
func TestListLimit(t *testing.T) {
	h := start(t)
	for _, order := range []string{"o-1", "o-2"} {
		h.Publish(schedule(order), "")
		h.Next()
	}
	h.CheckListLimit("/shipments", "/carrier")
}

func TestCrashMidHandlerSchedulesOnce(t *testing.T) {
	h := start(t)
	h.CrashOnce(faults.CrashMidHandler, schedule("o-crash"), contracts.TypeShipmentScheduled)
	if st := h.state(); st.Shipments[domain.StatusScheduled] != 1 {
		t.Errorf("state: got %+v, want one scheduled shipment", st)
	}
	// The crash came after the carrier booked and before the local commit:
	// the redelivery asked again and got the same booking.
	var list []shipment
	h.GetJSON("/shipments?order_id=o-crash", &list)
	c := h.carrier("o-crash")
	if len(list) != 1 || c.Outcome != "ACCEPTED" || c.Reference != list[0].ID || c.Requests != 2 {
		t.Errorf("carrier: got %+v for shipments %+v, want one booking, the recorded shipment, asked twice", c, list)
	}
}
