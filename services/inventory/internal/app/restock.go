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
	// IdempotencyKey, when set, makes the restock happen once: a retry
	// with the same key, SKU and quantity (its answer was lost, say)
	// changes nothing and answers the current stock. The inbox remembers
	// it as long as a message id (servicehost.InboxRetention).
	IdempotencyKey string
}

// RestockResult is a restock's outcome.
type RestockResult struct {
	Stock domain.Stock
	// Replayed is set when the idempotency key was used for this restock
	// already: nothing was added this time.
	Replayed bool
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
func (h RestockHandler) Handle(ctx context.Context, cmd Restock) (RestockResult, error) {
	var out domain.Stock
	load := func(ctx context.Context, tx Tx) (domain.Stock, error) {
		stock, err := tx.Stock(ctx, []string{cmd.SKU})
		if err != nil {
			return domain.Stock{}, err
		}
		s, ok := stock[cmd.SKU]
		if !ok {
			return domain.Stock{}, fmt.Errorf("%w %q", ErrUnknownSKU, cmd.SKU)
		}
		return s, nil
	}
	// DoRequest, not Do: a restock is a request, not a message, and must
	// not reach the crash_mid_handler fault point (a console restock,
	// always keyed, would take inventory down, and its retry again).
	duplicate, err := h.uow.DoRequest(ctx, restockID(cmd), func(ctx context.Context, tx Tx) error {
		s, err := load(ctx, tx)
		if err != nil {
			return err
		}
		if err := s.Restock(cmd.Quantity); err != nil {
			return err
		}
		out = s
		return tx.SaveStock(ctx, []domain.Stock{s})
	})
	if err == nil && duplicate {
		_, err = h.uow.DoRequest(ctx, "", func(ctx context.Context, tx Tx) error {
			out, err = load(ctx, tx)
			return err
		})
	}
	if err != nil {
		return RestockResult{}, fmt.Errorf("restock %s: %w", cmd.SKU, err)
	}
	return RestockResult{Stock: out, Replayed: duplicate}, nil
}

// restockID is the inbox key of a restock with an idempotency key, "" (no
// deduplication) without. The SKU and quantity are part of it: a key sent
// again with another restock is that other restock, not a retry.
func restockID(cmd Restock) string {
	if cmd.IdempotencyKey == "" {
		return ""
	}
	return fmt.Sprintf("restock %s %d %s", cmd.SKU, cmd.Quantity, cmd.IdempotencyKey)
}
