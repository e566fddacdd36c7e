package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/services/inventory/internal/domain"
)

// ErrUnknownSKU is returned by Restock for a SKU inventory does not hold.
var ErrUnknownSKU = domain.ErrUnknownSKU

// Restock adds units of a SKU (an admin action).
type Restock struct {
	SKU      string
	Quantity int
}

// RestockHandler applies Restock.
type RestockHandler struct {
	uow UnitOfWork
}

// NewRestockHandler returns the handler.
func NewRestockHandler(uow UnitOfWork) (RestockHandler, error) {
	if uow == nil {
		return RestockHandler{}, errors.New("restock: unit of work is nil")
	}
	return RestockHandler{uow: uow}, nil
}

// Handle adds the units and returns the new stock.
func (h RestockHandler) Handle(ctx context.Context, cmd Restock) (domain.Stock, error) {
	var out domain.Stock
	_, err := h.uow.Do(ctx, "", func(ctx context.Context, tx Tx) error {
		stock, err := tx.Stock(ctx, []string{cmd.SKU})
		if err != nil {
			return err
		}
		s, ok := stock[cmd.SKU]
		if !ok {
			return fmt.Errorf("%w %q", ErrUnknownSKU, cmd.SKU)
		}
		if err := s.Restock(cmd.Quantity); err != nil {
			return err
		}
		out = s
		return tx.SaveStock(ctx, []domain.Stock{s})
	})
	if err != nil {
		return domain.Stock{}, fmt.Errorf("restock %s: %w", cmd.SKU, err)
	}
	return out, nil
}
