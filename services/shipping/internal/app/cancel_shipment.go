package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
)

// CancelShipment asks to cancel an order's shipment. It is a compensation:
// idempotent, and answered even when there is nothing to cancel.
type CancelShipment struct {
	MessageID string
	Cancel    domain.Cancel
}

// CancelShipmentHandler answers ShipmentCancelled.
type CancelShipmentHandler struct {
	uow     UnitOfWork
	carrier Carrier
}

// NewCancelShipmentHandler returns the handler.
func NewCancelShipmentHandler(uow UnitOfWork, carrier Carrier) (CancelShipmentHandler, error) {
	if uow == nil || carrier == nil {
		return CancelShipmentHandler{}, errors.New("cancel shipment: unit of work and carrier are required")
	}
	return CancelShipmentHandler{uow: uow, carrier: carrier}, nil
}

// Handle withdraws the booking at the carrier, then cancels the shipment
// (if any) and emits ShipmentCancelled in one transaction; it returns the
// answer and whether the command was a duplicate.
func (h CancelShipmentHandler) Handle(ctx context.Context, cmd CancelShipment) (domain.CancelResult, bool, error) {
	if err := cmd.Cancel.Validate(); err != nil {
		return domain.CancelResult{}, false, err
	}
	withdrawn, err := h.carrier.Cancel(ctx, cmd.Cancel.OrderID, cmd.Cancel.ShipmentID)
	if err != nil {
		return domain.CancelResult{}, false, fmt.Errorf("cancel shipment of order %s: %w", cmd.Cancel.OrderID, err)
	}
	var answer domain.CancelResult
	dup, err := h.uow.Do(ctx, cmd.MessageID, func(ctx context.Context, tx Tx) error {
		existing, err := tx.Shipment(ctx, cmd.Cancel.OrderID)
		if err != nil {
			return err
		}
		res, err := domain.DecideCancel(cmd.Cancel, existing, withdrawn)
		if err != nil {
			return err
		}
		if res.Changed {
			if err := tx.SaveShipment(ctx, res.Shipment); err != nil {
				return err
			}
		}
		answer = res
		return tx.Emit(ctx, contracts.ShipmentCancelled{OrderID: cmd.Cancel.OrderID, ShipmentID: res.ShipmentID})
	})
	if err != nil {
		return domain.CancelResult{}, false, fmt.Errorf("cancel shipment of order %s: %w", cmd.Cancel.OrderID, err)
	}
	return answer, dup, nil
}
