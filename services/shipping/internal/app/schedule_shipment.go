package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
)

// ScheduleShipment asks to ship an order, once.
type ScheduleShipment struct {
	// MessageID deduplicates the command (the queue message UUID).
	MessageID string
	Schedule  domain.Schedule
}

// ScheduleShipmentHandler answers ShipmentScheduled or ShipmentFailed.
type ScheduleShipmentHandler struct {
	uow     UnitOfWork
	carrier Carrier
}

// NewScheduleShipmentHandler returns the handler.
func NewScheduleShipmentHandler(uow UnitOfWork, carrier Carrier) (ScheduleShipmentHandler, error) {
	if uow == nil || carrier == nil {
		return ScheduleShipmentHandler{}, errors.New("schedule shipment: unit of work and carrier are required")
	}
	return ScheduleShipmentHandler{uow: uow, carrier: carrier}, nil
}

// Handle books with the carrier, then records the shipment and the answer
// in one transaction. It returns the answering shipment and whether the
// command was a duplicate.
func (h ScheduleShipmentHandler) Handle(ctx context.Context, cmd ScheduleShipment) (domain.Shipment, bool, error) {
	if err := cmd.Schedule.Validate(); err != nil {
		return domain.Shipment{}, false, err
	}
	verdict, err := h.carrier.Book(ctx, cmd.Schedule)
	if err != nil {
		return domain.Shipment{}, false, fmt.Errorf("schedule shipment of order %s: %w", cmd.Schedule.OrderID, err)
	}
	var answer domain.Shipment
	dup, err := h.uow.Do(ctx, cmd.MessageID, func(ctx context.Context, tx Tx) error {
		existing, err := tx.Shipment(ctx, cmd.Schedule.OrderID)
		if err != nil {
			return err
		}
		res, err := domain.DecideSchedule(cmd.Schedule, existing, verdict)
		if err != nil {
			return err
		}
		if res.Changed {
			if err := tx.SaveShipment(ctx, res.Shipment); err != nil {
				return err
			}
		}
		answer = res.Shipment
		if res.Shipment.Status == domain.StatusScheduled {
			return tx.Emit(ctx, contracts.ShipmentScheduled{OrderID: cmd.Schedule.OrderID, ShipmentID: res.Shipment.ID,
				Carrier: res.Shipment.Carrier, TrackingNumber: res.Shipment.TrackingNumber})
		}
		return tx.Emit(ctx, contracts.ShipmentFailed{OrderID: cmd.Schedule.OrderID, Reason: res.Shipment.Reason})
	})
	if err != nil {
		return domain.Shipment{}, false, fmt.Errorf("schedule shipment of order %s: %w", cmd.Schedule.OrderID, err)
	}
	return answer, dup, nil
}
