package adapters

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/services/payment/internal/app"
	"github.com/orderflow/orderflow/services/payment/internal/domain"
)

// SimulatedGateway is an in-process payment provider steered by fault
// flags: payment_latency (response time), payment_transient_error_rate
// (an error before any effect, so the queue retries) and
// payment_decline_rate (declined charges).
type SimulatedGateway struct {
	faults *faults.Registry
	newID  func() string
}

// NewSimulatedGateway returns the gateway; reg must define the payment
// flags (faults.ServiceFlags("payment")).
func NewSimulatedGateway(reg *faults.Registry) *SimulatedGateway {
	return &SimulatedGateway{faults: reg, newID: func() string { return "pay_" + watermill.NewULID() }}
}

func (g *SimulatedGateway) roundTrip(ctx context.Context, op string) error {
	if err := g.faults.Sleep(ctx, faults.PaymentLatency); err != nil {
		return err
	}
	if g.faults.Chance(faults.PaymentTransientErrorRate) {
		return fmt.Errorf("%w: %s timed out (simulated)", app.ErrTransient, op)
	}
	return nil
}

// Authorize implements app.Gateway.
func (g *SimulatedGateway) Authorize(ctx context.Context, c domain.Charge) (domain.GatewayVerdict, error) {
	if err := g.roundTrip(ctx, "authorize"); err != nil {
		return domain.GatewayVerdict{}, err
	}
	if g.faults.Chance(faults.PaymentDeclineRate) {
		return domain.GatewayVerdict{Reason: "card declined (simulated)"}, nil
	}
	return domain.GatewayVerdict{Approved: true, PaymentID: g.newID()}, nil
}

// Refund implements app.Gateway.
func (g *SimulatedGateway) Refund(ctx context.Context, _ string) error {
	return g.roundTrip(ctx, "refund")
}
