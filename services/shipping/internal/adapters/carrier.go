package adapters

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/providersim"
	"github.com/orderflow/orderflow/services/shipping/internal/app"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
)

// SimulatedCarrier is a carrier steered by fault flags: shipping_latency
// (response time) and shipping_failure_rate (refusals). It keeps its books
// as a real carrier would (pkg/providersim, in the shipping database):
// idempotent per order id, and a cancellation of an order it never booked
// voids the order there. Its answers say when a booking was withdrawn,
// which the books' replayed first answer does not.
type SimulatedCarrier struct {
	faults *faults.Registry
	books  *providersim.Books
	newID  func() string
}

// carrierFlags are the fault flags the carrier reads, with their types.
var carrierFlags = []struct {
	name string
	typ  faults.Type
}{
	{faults.ShippingLatency, faults.TypeDuration},
	{faults.ShippingFailureRate, faults.TypeRate},
}

// NewSimulatedCarrier returns the carrier over db, whose books Migrate
// created; reg must define the shipping flags (faults.ServiceFlags("shipping")):
// a nil reg or a missing flag is an error here, not a panic in the first
// command.
func NewSimulatedCarrier(db *sql.DB, reg *faults.Registry) (*SimulatedCarrier, error) {
	if reg == nil {
		return nil, errors.New("simulated carrier: a fault registry is required")
	}
	for _, f := range carrierFlags {
		if err := reg.Require(f.name, f.typ); err != nil {
			return nil, fmt.Errorf("simulated carrier: %w", err)
		}
	}
	books, err := providersim.New(db, "carrier")
	if err != nil {
		return nil, err
	}
	return &SimulatedCarrier{faults: reg, books: books, newID: watermill.NewULID}, nil
}

// bookingDetails is what the carrier records of a booking besides its id.
type bookingDetails struct {
	Carrier        string `json:"carrier"`
	TrackingNumber string `json:"tracking_number"`
}

// Book implements app.Carrier.
func (c *SimulatedCarrier) Book(ctx context.Context, s domain.Schedule) (domain.CarrierVerdict, error) {
	if err := c.faults.Sleep(ctx, faults.ShippingLatency); err != nil {
		return domain.CarrierVerdict{}, err
	}
	rec, err := c.books.Request(ctx, s.OrderID, func() providersim.Answer {
		if c.faults.Chance(faults.ShippingFailureRate) {
			return providersim.Answer{Outcome: providersim.OutcomeRefused, Reason: "carrier refused the shipment (simulated)"}
		}
		id := c.newID()
		details, _ := json.Marshal(bookingDetails{Carrier: "Simulated Express", TrackingNumber: "SX" + strings.ToUpper(id[len(id)-12:])}) // cannot fail: two strings
		return providersim.Answer{Outcome: providersim.OutcomeAccepted, Reference: "shp_" + id, Details: string(details)}
	})
	if err != nil {
		return domain.CarrierVerdict{}, fmt.Errorf("book: %w", err)
	}
	switch rec.Outcome {
	case providersim.OutcomeVoided:
		return domain.CarrierVerdict{Reason: rec.Reason, Voided: true}, nil
	case providersim.OutcomeRefused:
		return domain.CarrierVerdict{Reason: rec.Reason}, nil
	}
	var d bookingDetails
	if err := json.Unmarshal([]byte(rec.Details), &d); err != nil {
		return domain.CarrierVerdict{}, fmt.Errorf("book: details of booking %s: %w", rec.Reference, err)
	}
	// The books repeat the first answer, ACCEPTED, even after the booking
	// was withdrawn: say so, or shipping schedules a parcel the carrier no
	// longer carries.
	return domain.CarrierVerdict{Accepted: true, ShipmentID: rec.Reference, Carrier: d.Carrier, TrackingNumber: d.TrackingNumber,
		Withdrawn: rec.Cancelled}, nil
}

// Cancel implements app.Carrier.
func (c *SimulatedCarrier) Cancel(ctx context.Context, orderID, shipmentID string) (domain.CarrierCancel, error) {
	if err := c.faults.Sleep(ctx, faults.ShippingLatency); err != nil {
		return domain.CarrierCancel{}, err
	}
	rec, err := c.books.Cancel(ctx, orderID, shipmentID, domain.ReasonVoided)
	if err != nil {
		return domain.CarrierCancel{}, fmt.Errorf("cancel: %w", err)
	}
	// A cancellation naming another booking left this one standing.
	if rec.Outcome != providersim.OutcomeAccepted || !rec.Cancelled || (shipmentID != "" && shipmentID != rec.Reference) {
		return domain.CarrierCancel{}, nil
	}
	var d bookingDetails
	if err := json.Unmarshal([]byte(rec.Details), &d); err != nil {
		return domain.CarrierCancel{}, fmt.Errorf("cancel: details of booking %s: %w", rec.Reference, err)
	}
	return domain.CarrierCancel{Withdrawn: true, ShipmentID: rec.Reference, Carrier: d.Carrier, TrackingNumber: d.TrackingNumber}, nil
}

// Records implements app.Carrier.
func (c *SimulatedCarrier) Records(ctx context.Context, f app.Filter) ([]app.CarrierRecord, error) {
	recs, err := c.books.List(ctx, providersim.Filter{Key: f.OrderID, Limit: f.Limit})
	if err != nil {
		return nil, err
	}
	out := make([]app.CarrierRecord, len(recs))
	for i, r := range recs {
		out[i] = app.CarrierRecord{
			OrderID: r.Key, Outcome: string(r.Outcome), Reference: r.Reference, Reason: r.Reason,
			Cancelled: r.Cancelled, Requests: r.Requests, Cancels: r.Cancels, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		}
	}
	return out, nil
}
