package adapters

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/providersim"
	"github.com/orderflow/orderflow/services/payment/internal/app"
	"github.com/orderflow/orderflow/services/payment/internal/domain"
)

// SimulatedGateway is a payment provider steered by fault flags:
// payment_latency (response time), payment_transient_error_rate (an error
// before any effect, so the queue retries) and payment_decline_rate
// (declined charges). It keeps its books as a real provider would
// (pkg/providersim, in the payment database): idempotent per order id, and
// a refund of an order it never charged voids the order there. Its answers
// say when a charge was refunded, which the books' replayed first answer
// does not.
type SimulatedGateway struct {
	faults *faults.Registry
	books  *providersim.Books
	newID  func() string
}

// gatewayFlags are the fault flags the gateway reads, with their types.
var gatewayFlags = []struct {
	name string
	typ  faults.Type
}{
	{faults.PaymentLatency, faults.TypeDuration},
	{faults.PaymentTransientErrorRate, faults.TypeRate},
	{faults.PaymentDeclineRate, faults.TypeRate},
}

// NewSimulatedGateway returns the gateway over db, whose books Migrate
// created; reg must define the payment flags (faults.ServiceFlags("payment")):
// a nil reg or a missing flag is an error here, not a panic in the first
// command.
func NewSimulatedGateway(db *sql.DB, reg *faults.Registry) (*SimulatedGateway, error) {
	if reg == nil {
		return nil, errors.New("simulated gateway: a fault registry is required")
	}
	for _, f := range gatewayFlags {
		if err := reg.Require(f.name, f.typ); err != nil {
			return nil, fmt.Errorf("simulated gateway: %w", err)
		}
	}
	books, err := providersim.New(db, "gateway")
	if err != nil {
		return nil, err
	}
	return &SimulatedGateway{faults: reg, books: books, newID: func() string { return "pay_" + watermill.NewULID() }}, nil
}

func (g *SimulatedGateway) roundTrip(ctx context.Context, op string) error {
	if err := g.faults.Sleep(ctx, faults.PaymentLatency); err != nil {
		return err
	}
	if g.faults.Chance(faults.PaymentTransientErrorRate) {
		return fmt.Errorf("%s timed out (simulated transient error)", op)
	}
	return nil
}

// chargeDetails is what the provider records of an accepted charge.
type chargeDetails struct {
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
}

// Authorize implements app.Gateway.
func (g *SimulatedGateway) Authorize(ctx context.Context, c domain.Charge) (domain.GatewayVerdict, error) {
	if err := g.roundTrip(ctx, "authorize"); err != nil {
		return domain.GatewayVerdict{}, err
	}
	rec, err := g.books.Request(ctx, c.OrderID, func() providersim.Answer {
		if g.faults.Chance(faults.PaymentDeclineRate) {
			return providersim.Answer{Outcome: providersim.OutcomeRefused, Reason: "card declined (simulated)"}
		}
		details, _ := json.Marshal(chargeDetails{AmountCents: c.AmountCents, Currency: c.Currency}) // cannot fail: two plain fields
		return providersim.Answer{Outcome: providersim.OutcomeAccepted, Reference: g.newID(), Details: string(details)}
	})
	if err != nil {
		return domain.GatewayVerdict{}, fmt.Errorf("authorize: %w", err)
	}
	switch rec.Outcome {
	case providersim.OutcomeAccepted:
		// The books repeat the first answer, ACCEPTED, even after the
		// charge was refunded: say so, or payment records as CHARGED money
		// the gateway has given back.
		return domain.GatewayVerdict{Approved: true, PaymentID: rec.Reference, Refunded: rec.Cancelled}, nil
	case providersim.OutcomeVoided:
		return domain.GatewayVerdict{Reason: rec.Reason, Voided: true}, nil
	}
	return domain.GatewayVerdict{Reason: rec.Reason}, nil
}

// Refund implements app.Gateway.
func (g *SimulatedGateway) Refund(ctx context.Context, orderID, paymentID string) (domain.GatewayRefund, error) {
	if err := g.roundTrip(ctx, "refund"); err != nil {
		return domain.GatewayRefund{}, err
	}
	rec, err := g.books.Cancel(ctx, orderID, paymentID, domain.ReasonVoided)
	if err != nil {
		return domain.GatewayRefund{}, fmt.Errorf("refund: %w", err)
	}
	// A cancellation naming another charge left this one standing.
	if rec.Outcome != providersim.OutcomeAccepted || !rec.Cancelled || (paymentID != "" && paymentID != rec.Reference) {
		return domain.GatewayRefund{}, nil
	}
	var d chargeDetails
	if err := json.Unmarshal([]byte(rec.Details), &d); err != nil {
		return domain.GatewayRefund{}, fmt.Errorf("refund: details of charge %s: %w", rec.Reference, err)
	}
	return domain.GatewayRefund{Refunded: true, PaymentID: rec.Reference, AmountCents: d.AmountCents, Currency: d.Currency}, nil
}

// Records implements app.Gateway.
func (g *SimulatedGateway) Records(ctx context.Context, f app.Filter) ([]app.GatewayRecord, error) {
	recs, err := g.books.List(ctx, providersim.Filter{Key: f.OrderID, Limit: f.Limit})
	if err != nil {
		return nil, err
	}
	out := make([]app.GatewayRecord, len(recs))
	for i, r := range recs {
		var d chargeDetails
		if r.Details != "" {
			if err := json.Unmarshal([]byte(r.Details), &d); err != nil {
				return nil, fmt.Errorf("gateway record of order %s: %w", r.Key, err)
			}
		}
		out[i] = app.GatewayRecord{
			OrderID: r.Key, Outcome: string(r.Outcome), Reference: r.Reference, AmountCents: d.AmountCents, Reason: r.Reason,
			Cancelled: r.Cancelled, Requests: r.Requests, Cancels: r.Cancels, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		}
	}
	return out, nil
}
