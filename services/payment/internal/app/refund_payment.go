package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/payment/internal/domain"
)

// RefundPayment asks to refund an order's charge. It is a compensation:
// idempotent, and answered even when there is nothing to refund.
type RefundPayment struct {
	MessageID string
	Refund    domain.Refund
}

// RefundPaymentHandler answers PaymentRefunded.
type RefundPaymentHandler struct {
	uow UnitOfWork
	gw  Gateway
}

// NewRefundPaymentHandler returns the handler.
func NewRefundPaymentHandler(uow UnitOfWork, gw Gateway) (RefundPaymentHandler, error) {
	if uow == nil || gw == nil {
		return RefundPaymentHandler{}, errors.New("refund payment: unit of work and gateway are required")
	}
	return RefundPaymentHandler{uow: uow, gw: gw}, nil
}

// Handle refunds the order's charge (if any) and emits PaymentRefunded in
// one transaction; it returns the amount refunded (0 if nothing) and
// whether the command was a duplicate.
func (h RefundPaymentHandler) Handle(ctx context.Context, cmd RefundPayment) (int64, bool, error) {
	if err := cmd.Refund.Validate(); err != nil {
		return 0, false, err
	}
	refunded, err := h.gw.Refund(ctx, cmd.Refund.OrderID, cmd.Refund.PaymentID)
	if err != nil {
		return 0, false, fmt.Errorf("refund order %s: %w", cmd.Refund.OrderID, err)
	}
	var amount int64
	dup, err := h.uow.Do(ctx, cmd.MessageID, func(ctx context.Context, tx Tx) error {
		existing, err := tx.Payment(ctx, cmd.Refund.OrderID)
		if err != nil {
			return err
		}
		res, err := domain.DecideRefund(cmd.Refund, existing, refunded)
		if err != nil {
			return err
		}
		if res.Changed {
			if err := tx.SavePayment(ctx, res.Payment); err != nil {
				return err
			}
		}
		for _, e := range res.Entries {
			if err := tx.AppendLedger(ctx, e); err != nil {
				return err
			}
		}
		amount = res.AmountCents
		return tx.Emit(ctx, contracts.PaymentRefunded{OrderID: cmd.Refund.OrderID, PaymentID: res.PaymentID,
			AmountCents: res.AmountCents, Currency: res.Currency})
	})
	if err != nil {
		return 0, false, fmt.Errorf("refund order %s: %w", cmd.Refund.OrderID, err)
	}
	return amount, dup, nil
}
