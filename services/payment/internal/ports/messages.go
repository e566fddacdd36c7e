// Package ports adapts the outside world to payment's application layer:
// the Watermill handler of the commands it consumes (messages.go) and the
// read-only and admin HTTP routes (http.go).
package ports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/metric"

	"github.com/orderflow/orderflow/pkg/commandhandler"
	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/services/payment/internal/app"
	"github.com/orderflow/orderflow/services/payment/internal/domain"
)

// NewMessageHandlers returns the handler of payment.commands: decoding,
// fault flags, metrics and the crash point are pkg/commandhandler's, what
// each command does is dispatch's. meter may be nil.
func NewMessageHandlers(a app.Application, reg *faults.Registry, logger *slog.Logger, meter metric.Meter) (*commandhandler.Handler, error) {
	return commandhandler.New(commandhandler.Config{
		Topic:     contracts.TopicPaymentCommands,
		Dispatch:  dispatcher{app: a}.dispatch,
		Permanent: isInvalid,
		Faults:    reg,
		Logger:    logger,
		Meter:     meter,
	})
}

// isInvalid reports the errors of commands that no retry can fix.
func isInvalid(err error) bool {
	return errors.Is(err, domain.ErrInvalidCommand)
}

// dispatcher calls the application for each command.
type dispatcher struct {
	app app.Application
}

// dispatch hands one decoded command to the application.
func (h dispatcher) dispatch(ctx context.Context, log *slog.Logger, id string, m contracts.Message) (bool, error) {
	switch m := m.(type) {
	case contracts.ChargePayment:
		p, dup, err := h.app.Commands.ChargePayment.Handle(ctx, app.ChargePayment{MessageID: id, Charge: domain.Charge{
			OrderID: m.OrderID, CustomerID: m.CustomerID, AmountCents: m.AmountCents, Currency: m.Currency}})
		if err == nil && !dup {
			log.InfoContext(ctx, "charge answered", slog.String("status", string(p.Status)),
				slog.String("payment_id", p.ID), slog.Int64("amount_cents", p.AmountCents), slog.String("reason", p.Reason))
		}
		return dup, err
	case contracts.RefundPayment:
		amount, dup, err := h.app.Commands.RefundPayment.Handle(ctx, app.RefundPayment{MessageID: id, Refund: domain.Refund{
			OrderID: m.OrderID, PaymentID: m.PaymentID, Currency: m.Currency}})
		if err == nil && !dup {
			log.InfoContext(ctx, "refund answered", slog.Int64("refunded_cents", amount), slog.String("payment_id", m.PaymentID))
		}
		return dup, err
	default:
		return false, queue.Permanent(fmt.Errorf("unexpected message type %s on %s", m.MessageType(), contracts.TopicPaymentCommands))
	}
}
