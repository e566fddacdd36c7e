// Package ports adapts the outside world to shipping's application layer:
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
	"github.com/orderflow/orderflow/services/shipping/internal/app"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
)

// HandlerName is the router handler of shipping.commands.
const HandlerName = "shipping.commands"

// MessageHandlers consumes shipping.commands.
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
	r.Handle(HandlerName, contracts.TopicShippingCommands, h.Handle)
}

// Handle handles one message of shipping.commands. An undecodable message
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
	case contracts.ScheduleShipment:
		lines := make([]domain.Line, 0, len(m.Items))
		for _, it := range m.Items {
			lines = append(lines, domain.Line{SKU: it.SKU, Quantity: it.Quantity})
		}
		a := m.Address
		sh, dup, err := h.app.Commands.ScheduleShipment.Handle(ctx, app.ScheduleShipment{MessageID: id, Schedule: domain.Schedule{
			OrderID: m.OrderID, Lines: lines, Address: domain.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2,
				City: a.City, PostalCode: a.PostalCode, Country: a.Country}}})
		if err == nil && !dup {
			log.InfoContext(ctx, "shipment answered", slog.String("status", string(sh.Status)),
				slog.String("shipment_id", sh.ID), slog.String("reason", sh.Reason))
		}
		return dup, err
	case contracts.CancelShipment:
		res, dup, err := h.app.Commands.CancelShipment.Handle(ctx, app.CancelShipment{MessageID: id, Cancel: domain.Cancel{
			OrderID: m.OrderID, ShipmentID: m.ShipmentID}})
		if err == nil && !dup {
			log.InfoContext(ctx, "cancel answered", slog.String("shipment_id", res.ShipmentID), slog.Bool("cancelled", res.Cancelled))
		}
		return dup, err
	default:
		return false, queue.Permanent(fmt.Errorf("unexpected message type %s on %s", m.MessageType(), contracts.TopicShippingCommands))
	}
}

func (h *MessageHandlers) count(ctx context.Context, typ, outcome string, start time.Time) {
	attrs := metric.WithAttributes(attribute.String("type", typ), attribute.String("outcome", outcome))
	h.handled.Add(ctx, 1, attrs)
	h.latency.Record(ctx, time.Since(start).Seconds(), attrs)
}
