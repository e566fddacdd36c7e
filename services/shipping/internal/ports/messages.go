// Package ports adapts the outside world to shipping's application layer:
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
	"github.com/orderflow/orderflow/services/shipping/internal/app"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
)

// NewMessageHandlers returns the handler of shipping.commands: decoding,
// fault flags, metrics and the crash point are pkg/commandhandler's, what
// each command does is dispatch's. meter may be nil.
func NewMessageHandlers(a app.Application, reg *faults.Registry, logger *slog.Logger, meter metric.Meter) (*commandhandler.Handler, error) {
	return commandhandler.New(commandhandler.Config{
		Topic:     contracts.TopicShippingCommands,
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
