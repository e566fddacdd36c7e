package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/pkg/idempotency"
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
	// changes nothing and answers the current stock; the key sent with
	// another SKU or quantity is a *KeyReusedError. A key is kept for
	// the handler's key retention (Config.RestockKeyRetention); sent
	// again later, it is a new restock's.
	IdempotencyKey string
}

// RestockKey is the record of a restock made with an Idempotency-Key:
// the restock the key was sent with.
type RestockKey struct {
	Key       string
	SKU       string
	Quantity  int
	CreatedAt time.Time
}

// KeyReusedError is Restock's error for an Idempotency-Key sent before
// with another restock (another SKU or quantity), Earlier: a key names one
// restock, as it names one order on POST /orders. It matches
// idempotency.ErrKeyReused.
type KeyReusedError struct {
	Earlier RestockKey
}

func (e *KeyReusedError) Error() string {
	return fmt.Sprintf("%v: key %q restocked %s by %d", idempotency.ErrKeyReused, e.Earlier.Key, e.Earlier.SKU, e.Earlier.Quantity)
}

// Unwrap returns idempotency.ErrKeyReused.
func (e *KeyReusedError) Unwrap() error { return idempotency.ErrKeyReused }

// RestockResult is a restock's outcome.
type RestockResult struct {
	Stock domain.Stock
	// Replayed is set when the idempotency key was used for this restock
	// already: nothing was added this time.
	Replayed bool
}

// RestockHandler applies Restock.
type RestockHandler struct {
	uow          UnitOfWork
	keyRetention time.Duration
}

// NewRestockHandler returns the handler, which keeps an Idempotency-Key
// for keyRetention.
func NewRestockHandler(uow UnitOfWork, keyRetention time.Duration) (RestockHandler, error) {
	if uow == nil {
		return RestockHandler{}, errors.New("restock: unit of work is nil")
	}
	if keyRetention <= 0 {
		return RestockHandler{}, fmt.Errorf("restock: key retention must be positive, got %s", keyRetention)
	}
	return RestockHandler{uow: uow, keyRetention: keyRetention}, nil
}

// Handle adds the units and returns the new stock. The restock is checked
// first, as POST /orders checks an order before its key: a quantity below
// 1 (a *domain.QuantityError, before any transaction) or a SKU inventory
// does not hold (ErrUnknownSKU) is refused whatever the idempotency key,
// which is then neither looked up nor taken. Then the key, looked up and
// recorded in the restock's transaction, decides: kept with this SKU and
// quantity, the restock is a replay; kept with others, a *KeyReusedError.
// Last, a quantity that would take the stock past what it can count is a
// *domain.QuantityError (a replay is answered whatever the stock).
func (h RestockHandler) Handle(ctx context.Context, cmd Restock) (RestockResult, error) {
	if err := domain.CheckRestockQuantity(cmd.Quantity); err != nil {
		return RestockResult{}, fmt.Errorf("restock %s: %w", cmd.SKU, err)
	}
	var res RestockResult
	// DoRequest, not Do: a restock is a request, not a message, and must
	// not reach the crash_mid_handler fault point (a console restock,
	// always keyed, would take inventory down, and its retry again). The
	// key is the restock's own record, not an inbox id: a key sent again
	// must be told apart by what it was sent with.
	err := h.uow.DoRequest(ctx, func(ctx context.Context, tx Tx) error {
		now := time.Now()
		s, err := loadStock(ctx, tx, cmd.SKU)
		if err != nil {
			return err
		}
		if cmd.IdempotencyKey != "" {
			earlier, found, err := restockKey(ctx, tx, cmd.IdempotencyKey, now.Add(-h.keyRetention))
			if err != nil {
				return err
			}
			if found && (earlier.SKU != cmd.SKU || earlier.Quantity != cmd.Quantity) {
				return &KeyReusedError{Earlier: earlier}
			}
			if found {
				res = RestockResult{Stock: s, Replayed: true}
				return nil
			}
		}
		if err := s.Restock(cmd.Quantity); err != nil {
			return err
		}
		if err := tx.SaveStock(ctx, []domain.Stock{s}); err != nil {
			return err
		}
		if cmd.IdempotencyKey != "" {
			rk := RestockKey{Key: cmd.IdempotencyKey, SKU: cmd.SKU, Quantity: cmd.Quantity, CreatedAt: now}
			if err := tx.SaveRestockKey(ctx, rk); err != nil {
				return err
			}
		}
		res = RestockResult{Stock: s}
		return nil
	})
	if err != nil {
		return RestockResult{}, fmt.Errorf("restock %s: %w", cmd.SKU, err)
	}
	return res, nil
}

// restockKey returns the record of key, after deleting the keys created
// before expiredBefore (a restock is rare, and its transaction the place
// to keep the table small).
func restockKey(ctx context.Context, tx Tx, key string, expiredBefore time.Time) (RestockKey, bool, error) {
	if err := tx.PurgeRestockKeys(ctx, expiredBefore); err != nil {
		return RestockKey{}, false, err
	}
	return tx.RestockKey(ctx, key)
}

// loadStock returns the stock of sku, ErrUnknownSKU when inventory holds
// none.
func loadStock(ctx context.Context, tx Tx, sku string) (domain.Stock, error) {
	stock, err := tx.Stock(ctx, []string{sku})
	if err != nil {
		return domain.Stock{}, err
	}
	s, ok := stock[sku]
	if !ok {
		return domain.Stock{}, fmt.Errorf("%w %q", ErrUnknownSKU, sku)
	}
	return s, nil
}
