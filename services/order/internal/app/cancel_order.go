package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// CancelOrder is the customer's request to cancel an order.
type CancelOrder struct {
	OrderID string
	// Reason is optional; the domain supplies a default.
	Reason string
	// RequestID identifies the request (the causation id); optional.
	RequestID string
}

// CancelOrderHandler records the cancellation and sends the compensations of
// the steps already done, in one transaction.
type CancelOrderHandler struct {
	tx Transactor
	c  *committer
}

// NewCancelOrderHandler returns a CancelOrderHandler.
func NewCancelOrderHandler(tx Transactor, opts Options) (CancelOrderHandler, error) {
	if tx == nil {
		return CancelOrderHandler{}, errors.New("new cancel order handler: transactor is nil")
	}
	c, err := newCommitter(opts)
	if err != nil {
		return CancelOrderHandler{}, fmt.Errorf("new cancel order handler: %w", err)
	}
	return CancelOrderHandler{tx: tx, c: c}, nil
}

// Handle cancels the order. Cancelling a cancelling or cancelled order is a
// no-op; a COMPLETED or REJECTED one returns domain.ErrNotCancellable, an
// unknown one ErrOrderNotFound.
func (h CancelOrderHandler) Handle(ctx context.Context, cmd CancelOrder) error {
	if h.tx == nil {
		return errors.New("cancel order: handler not initialised")
	}
	var (
		o   *domain.Order
		d   domain.Decision
		now time.Time
	)
	err := h.c.retryOnConflict(ctx, func() error {
		return h.tx.InTx(ctx, func(ctx context.Context, tx Tx) error {
			var err error
			if o, err = tx.LoadOrder(ctx, cmd.OrderID); err != nil {
				return err
			}
			now = h.c.now()
			if d, err = o.Cancel(cmd.Reason, now); err != nil {
				return err
			}
			return h.c.commit(ctx, tx, o, d, newMetadata(ctx, o.ID(), "http", cmd.RequestID), now)
		})
	})
	if err != nil {
		return fmt.Errorf("cancel order %s: %w", cmd.OrderID, err)
	}
	h.c.observe(ctx, o, d, now)
	h.c.opts.Logger.InfoContext(ctx, "order cancellation requested", "order_id", cmd.OrderID)
	return nil
}
