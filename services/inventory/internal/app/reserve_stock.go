package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/inventory/internal/domain"
)

// ReserveStock asks to hold stock for an order, all or nothing.
type ReserveStock struct {
	// MessageID deduplicates the command (the queue message UUID).
	MessageID string
	OrderID   string
	Lines     []domain.Line
}

// ReserveStockHandler answers StockReserved or StockReservationFailed.
type ReserveStockHandler struct {
	uow        UnitOfWork
	outOfStock func() []string
}

// NewReserveStockHandler returns the handler; outOfStock may be nil.
func NewReserveStockHandler(uow UnitOfWork, outOfStock func() []string) (ReserveStockHandler, error) {
	if uow == nil {
		return ReserveStockHandler{}, errors.New("reserve stock: unit of work is nil")
	}
	if outOfStock == nil {
		outOfStock = func() []string { return nil }
	}
	return ReserveStockHandler{uow: uow, outOfStock: outOfStock}, nil
}

// Handle reserves the stock and emits the answer in one transaction. It
// returns the reservation that answers the command (for logging) and
// whether the command was a duplicate (then nothing happened).
func (h ReserveStockHandler) Handle(ctx context.Context, cmd ReserveStock) (domain.Reservation, bool, error) {
	var answer domain.Reservation
	dup, err := h.uow.Do(ctx, cmd.MessageID, func(ctx context.Context, tx Tx) error {
		existing, err := tx.Reservation(ctx, cmd.OrderID)
		if err != nil {
			return err
		}
		skus := make([]string, 0, len(cmd.Lines))
		for _, l := range cmd.Lines {
			skus = append(skus, l.SKU)
		}
		stock, err := tx.Stock(ctx, skus)
		if err != nil {
			return err
		}
		res, err := domain.Reserve(cmd.OrderID, cmd.Lines, existing, stock, h.outOfStock())
		if err != nil {
			return err
		}
		if res.Changed {
			if err := tx.SaveStock(ctx, res.Stock); err != nil {
				return err
			}
			if err := tx.SaveReservation(ctx, res.Reservation); err != nil {
				return err
			}
		}
		answer = res.Reservation
		var m contracts.Message
		if res.Reserved() {
			m = contracts.StockReserved{OrderID: cmd.OrderID, Items: toItems(res.Reservation.Lines)}
		} else {
			m = contracts.StockReservationFailed{OrderID: cmd.OrderID, Reason: res.Reservation.Reason, Unavailable: toItems(res.Reservation.Unavailable)}
		}
		return tx.Emit(ctx, m)
	})
	if err != nil {
		return domain.Reservation{}, false, fmt.Errorf("reserve stock for order %s: %w", cmd.OrderID, err)
	}
	return answer, dup, nil
}
