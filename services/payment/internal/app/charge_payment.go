package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/payment/internal/domain"
)

// ChargePayment asks to charge an order; the order id is the idempotency
// key.
type ChargePayment struct {
	// MessageID deduplicates the command (the queue message UUID).
	MessageID string
	Charge    domain.Charge
}

// ChargePaymentHandler answers PaymentCharged or PaymentDeclined.
type ChargePaymentHandler struct {
	uow UnitOfWork
	gw  Gateway
}

// NewChargePaymentHandler returns the handler.
func NewChargePaymentHandler(uow UnitOfWork, gw Gateway) (ChargePaymentHandler, error) {
	if uow == nil || gw == nil {
		return ChargePaymentHandler{}, errors.New("charge payment: unit of work and gateway are required")
	}
	return ChargePaymentHandler{uow: uow, gw: gw}, nil
}

// Handle asks the gateway, then records the payment, its ledger entry and
// the answer in one transaction. It returns the answering payment and
// whether the command was a duplicate.
func (h ChargePaymentHandler) Handle(ctx context.Context, cmd ChargePayment) (domain.Payment, bool, error) {
	if err := cmd.Charge.Validate(); err != nil {
		return domain.Payment{}, false, err
	}
	verdict, err := h.gw.Authorize(ctx, cmd.Charge)
	if err != nil {
		return domain.Payment{}, false, fmt.Errorf("charge order %s: %w", cmd.Charge.OrderID, err)
	}
	var answer domain.Payment
	dup, err := h.uow.Do(ctx, cmd.MessageID, func(ctx context.Context, tx Tx) error {
		existing, err := tx.Payment(ctx, cmd.Charge.OrderID)
		if err != nil {
			return err
		}
		res, err := domain.DecideCharge(cmd.Charge, existing, verdict)
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
		answer = res.Payment
		if res.Payment.Status == domain.StatusCharged {
			return tx.Emit(ctx, contracts.PaymentCharged{OrderID: cmd.Charge.OrderID, PaymentID: res.Payment.ID,
				AmountCents: res.Payment.AmountCents, Currency: res.Payment.Currency})
		}
		return tx.Emit(ctx, contracts.PaymentDeclined{OrderID: cmd.Charge.OrderID, Reason: res.Payment.Reason})
	})
	if err != nil {
		return domain.Payment{}, false, fmt.Errorf("charge order %s: %w", cmd.Charge.OrderID, err)
	}
	return answer, dup, nil
}
