package adapters

import (
	"context"
	"strings"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
)

// SimulatedCarrier is an in-process carrier steered by fault flags:
// shipping_latency (response time) and shipping_failure_rate (refusals).
type SimulatedCarrier struct {
	faults *faults.Registry
	newID  func() string
}

// NewSimulatedCarrier returns the carrier; reg must define the shipping
// flags (faults.ServiceFlags("shipping")).
func NewSimulatedCarrier(reg *faults.Registry) *SimulatedCarrier {
	return &SimulatedCarrier{faults: reg, newID: watermill.NewULID}
}

// Book implements app.Carrier.
func (c *SimulatedCarrier) Book(ctx context.Context, _ domain.Schedule) (domain.CarrierVerdict, error) {
	if err := c.faults.Sleep(ctx, faults.ShippingLatency); err != nil {
		return domain.CarrierVerdict{}, err
	}
	if c.faults.Chance(faults.ShippingFailureRate) {
		return domain.CarrierVerdict{Reason: "carrier refused the shipment (simulated)"}, nil
	}
	id := c.newID()
	return domain.CarrierVerdict{
		Accepted: true, ShipmentID: "shp_" + id, Carrier: "Simulated Express",
		TrackingNumber: "SX" + strings.ToUpper(id[len(id)-12:]),
	}, nil
}
