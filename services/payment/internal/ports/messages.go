// Package ports adapts the outside world to payment's application layer:
// Watermill handlers for the commands it consumes (messages.go) and the
// read-only and admin HTTP routes (http.go).
package ports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/services/payment/internal/app"
	"github.com/orderflow/orderflow/services/payment/internal/domain"
)

// HandlerName is the router handler of payment.commands.
const HandlerName = "payment.commands"

// MessageHandlers consumes payment.commands.
type MessageHandlers struct {
	app     app.Application
	faults  *faults.Registry
	logger  *slog.Logger
	handled metric.Int64Counter
	latency metric.Float64Histogram
}

// NewMessageHandlers returns the handlers; meter may be nil.
func NewMessageHandlers(a app.Application, reg *faults.Registry, logger *slog.Logger, meter metric.Meter) (*MessageHandlers, error) {
	if reg == nil || logger == nil {
		return nil, errors.New("message handlers: faults and logger are required")
	}
	if meter == nil {
		meter = noop.NewMeterProvider().Meter("")
	}
	handled, err := meter.Int64Counter("orderflow.messages.handled",
		metric.WithDescription("Messages handled, by type and outcome (ok, duplicate, failed, undecodable)."))
	if err != nil {
		return nil, err
	}
	latency, err := meter.Float64Histogram("orderflow.handler.duration", metric.WithUnit("s"),
		metric.WithDescription("Time spent in the message handler."))
	if err != nil {
		return nil, err
	}
	return &MessageHandlers{app: a, faults: reg, logger: logger, handled: handled, latency: latency}, nil
}

// Register adds the handlers to r.
func (h *MessageHandlers) Register(r *queue.Router) {
	r.Handle(HandlerName, contracts.TopicPaymentCommands, h.Handle)
}

// Handle handles one message of payment.commands. An undecodable message
// is a permanent failure (dead-lettered at once); any other error is
// retried by the router.
func (h *MessageHandlers) Handle(msg *message.Message) error {
	ctx := msg.Context()
	start := time.Now()
	m, err := contracts.Decode(msg.Metadata, msg.Payload)
	if err != nil {
		h.logger.WarnContext(ctx, "undecodable message; dead-lettering it",
			slog.String("message_id", msg.UUID), slog.Any("error", err))
		h.count(ctx, msg.Metadata.Get(contracts.MetadataType), "undecodable", start)
		return queue.Permanent(err)
	}
	log := h.logger.With(slog.String("order_id", m.CorrelationID()), slog.String("message_id", msg.UUID),
		slog.String("type", m.MessageType()))
	if err := h.faults.Sleep(ctx, faults.HandlerLatency); err != nil {
		return err
	}
	dup, err := h.dispatch(ctx, log, msg.UUID, m)
	if err != nil {
		log.WarnContext(ctx, "command failed", slog.Any("error", err))
		h.count(ctx, m.MessageType(), "failed", start)
		if errors.Is(err, domain.ErrInvalidCommand) {
			return queue.Permanent(err)
		}
		return err
	}
	outcome := "ok"
	if dup {
		outcome = "duplicate"
		log.DebugContext(ctx, "duplicate command ignored")
	}
	h.count(ctx, m.MessageType(), outcome, start)
	h.faults.CrashPoint(faults.CrashAfterCommit)
	return nil
}

func (h *MessageHandlers) dispatch(ctx context.Context, log *slog.Logger, id string, m contracts.Message) (bool, error) {
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

func (h *MessageHandlers) count(ctx context.Context, typ, outcome string, start time.Time) {
	attrs := metric.WithAttributes(attribute.String("type", typ), attribute.String("outcome", outcome))
	h.handled.Add(ctx, 1, attrs)
	h.latency.Record(ctx, time.Since(start).Seconds(), attrs)
}
