// Package ports adapts the outside world to inventory's application layer:
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
	"github.com/orderflow/orderflow/services/inventory/internal/app"
	"github.com/orderflow/orderflow/services/inventory/internal/domain"
)

// NewMessageHandlers returns the handler of inventory.commands: decoding,
// fault flags, metrics and the crash point are pkg/commandhandler's, what
// each command does is dispatch's. meter may be nil.
func NewMessageHandlers(a app.Application, reg *faults.Registry, logger *slog.Logger, meter metric.Meter) (*commandhandler.Handler, error) {
	return commandhandler.New(commandhandler.Config{
		Topic:     contracts.TopicInventoryCommands,
		Dispatch:  dispatcher{app: a}.dispatch,
		Permanent: isInvalid,
		Faults:    reg,
		Logger:    logger,
		Meter:     meter,
	})
}

// isInvalid reports the errors of commands that no retry can fix.
func isInvalid(err error) bool {
	return errors.Is(err, domain.ErrInvalidOrder) || errors.Is(err, domain.ErrInvalidQuantity)
}

// dispatcher calls the application for each command.
type dispatcher struct {
	app app.Application
}

// dispatch hands one decoded command to the application.
func (h dispatcher) dispatch(ctx context.Context, log *slog.Logger, id string, m contracts.Message) (bool, error) {
	switch m := m.(type) {
	case contracts.ReserveStock:
		r, dup, err := h.app.Commands.ReserveStock.Handle(ctx, app.ReserveStock{
			MessageID: id, OrderID: m.OrderID, Lines: app.LinesFromItems(m.Items)})
		if err == nil && !dup {
			log.InfoContext(ctx, "stock reservation answered", slog.String("status", string(r.Status)),
				slog.String("reason", r.Reason))
		}
		return dup, err
	case contracts.ReleaseStock:
		lines, dup, err := h.app.Commands.ReleaseStock.Handle(ctx, app.ReleaseStock{MessageID: id, OrderID: m.OrderID})
		if err == nil && !dup {
			log.InfoContext(ctx, "stock released", slog.Int("lines", len(lines)))
		}
		return dup, err
	default:
		return false, queue.Permanent(fmt.Errorf("unexpected message type %s on %s", m.MessageType(), contracts.TopicInventoryCommands))
	}
}
