package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/inventory/internal/domain"
)

// ReleaseStock gives an order's reserved stock back. It is a compensation:
// idempotent, and answered even when nothing was reserved.
type ReleaseStock struct {
	MessageID string
	OrderID   string
}

// ReleaseStockHandler answers StockReleased.
type ReleaseStockHandler struct {
	uow UnitOfWork
}

// NewReleaseStockHandler returns the handler.
func NewReleaseStockHandler(uow UnitOfWork) (ReleaseStockHandler, error) {
	if uow == nil {
		return ReleaseStockHandler{}, errors.New("release stock: unit of work is nil")
	}
	return ReleaseStockHandler{uow: uow}, nil
}

// Handle releases the stock and emits StockReleased in one transaction; it
// returns the lines released (empty if nothing was held) and whether the
// command was a duplicate.
func (h ReleaseStockHandler) Handle(ctx context.Context, cmd ReleaseStock) ([]domain.Line, bool, error) {
	var released []domain.Line
	dup, err := h.uow.Do(ctx, cmd.MessageID, func(ctx context.Context, tx Tx) error {
		existing, err := tx.Reservation(ctx, cmd.OrderID)
		if err != nil {
			return err
		}
		var stock map[string]domain.Stock
		if existing != nil && len(existing.Lines) > 0 {
			skus := make([]string, 0, len(existing.Lines))
			for _, l := range existing.Lines {
				skus = append(skus, l.SKU)
			}
			if stock, err = tx.Stock(ctx, skus); err != nil {
				return err
			}
		}
		res, err := domain.Release(cmd.OrderID, existing, stock)
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
		released = res.Released
		return tx.Emit(ctx, contracts.StockReleased{OrderID: cmd.OrderID, Items: toItems(res.Released)})
	})
	if err != nil {
		return nil, false, fmt.Errorf("release stock of order %s: %w", cmd.OrderID, err)
	}
	return released, dup, nil
}
