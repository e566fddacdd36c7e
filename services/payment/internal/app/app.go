// Package app is payment's application layer: one command per file, each
// asking the (simulated) gateway, then deciding, storing and emitting the
// answer in one local transaction, plus the read-only queries. It knows the
// message contracts but no infrastructure.
package app

import (
	"context"
	"time"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/payment/internal/domain"
)

// UnitOfWork runs the effects of one command in one local transaction.
type UnitOfWork interface {
	// Do runs fn in a transaction that commits if fn returns nil. With a
	// messageID, the id is recorded in the same transaction and a message
	// already processed returns duplicate=true without running fn.
	Do(ctx context.Context, messageID string, fn func(ctx context.Context, tx Tx) error) (duplicate bool, err error)
}

// Tx is the state and the outbox seen through one transaction.
type Tx interface {
	// Payment returns the order's payment, or nil if none.
	Payment(ctx context.Context, orderID string) (*domain.Payment, error)
	SavePayment(ctx context.Context, p domain.Payment) error
	AppendLedger(ctx context.Context, e domain.Entry) error
	// Emit stores m in the outbox; it is published if the transaction
	// commits.
	Emit(ctx context.Context, m contracts.Message) error
}

// Gateway is the payment provider. Both calls happen before the local
// transaction, so a slow gateway holds no database lock. Any error they
// return fails the command, which the queue retries (every error but
// domain.ErrInvalidCommand is retried): no error of theirs needs a mark
// of its own.
//
// Because they come before the inbox's duplicate check, a redelivered
// command (at-least-once) calls the gateway again, and so does a retry
// after a crash between the call and the local commit. The order id is
// the provider's idempotency key: a second Authorize of one order returns
// the first answer instead of charging twice, a second Refund refunds
// nothing more, and a Refund that comes before any Authorize voids the
// order at the provider, so that a late charge command is declined there
// instead of charging a customer whose order was compensated. (The local
// transaction keeps the first payment either way: domain.DecideCharge.)
//
// So either call may meet an effect whose local transaction never ran: a
// Refund may refund a charge payment has not recorded, and an Authorize
// repeated after a Refund answers with a charge already refunded. Both
// say so (GatewayRefund, GatewayVerdict.Refunded), so that payment
// records the money that moved, and no charge the gateway gave back.
type Gateway interface {
	// Authorize decides a new charge; idempotent per c.OrderID.
	Authorize(ctx context.Context, c domain.Charge) (domain.GatewayVerdict, error)
	// Refund refunds the order's charge if it has one (only if it is
	// paymentID, when that is not empty), and otherwise voids the order so
	// that no later Authorize charges it; idempotent per order id. It
	// returns the charge the gateway has refunded, by this call or an
	// earlier one, if any.
	Refund(ctx context.Context, orderID, paymentID string) (domain.GatewayRefund, error)
	// Records lists the provider's own books, per order, newest first:
	// what an audit compares with the ledger.
	Records(ctx context.Context, f Filter) ([]GatewayRecord, error)
}

// GatewayRecord is the provider's line for one order.
type GatewayRecord struct {
	OrderID string `json:"order_id"`
	// Outcome of the first Authorize: ACCEPTED (charged), REFUSED
	// (declined) or VOIDED (refunded before any Authorize).
	Outcome string `json:"outcome"`
	// Reference is the payment id of an accepted charge, AmountCents what
	// it took.
	Reference   string `json:"reference,omitempty"`
	AmountCents int64  `json:"amount_cents,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Cancelled: the charge was refunded.
	Cancelled bool `json:"cancelled"`
	// Requests and Cancels count the Authorize and Refund calls; only the
	// first of each had an effect.
	Requests  int       `json:"requests"`
	Cancels   int       `json:"cancels"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Filter narrows the lists of the read model.
type Filter struct {
	OrderID string
	// Limit caps the list; 0 means 1000.
	Limit int
}

// ReadModel answers the queries.
type ReadModel interface {
	Payments(ctx context.Context, f Filter) ([]domain.Payment, error)
	Ledger(ctx context.Context, f Filter) ([]LedgerEntry, error)
	Totals(ctx context.Context) (Totals, error)
}

// Application is what the ports call.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands are payment's commands.
type Commands struct {
	ChargePayment ChargePaymentHandler
	RefundPayment RefundPaymentHandler
}

// New wires the application.
func New(uow UnitOfWork, gw Gateway, rm ReadModel) (Application, error) {
	charge, err := NewChargePaymentHandler(uow, gw)
	if err != nil {
		return Application{}, err
	}
	refund, err := NewRefundPaymentHandler(uow, gw)
	if err != nil {
		return Application{}, err
	}
	queries, err := NewQueries(rm, gw)
	if err != nil {
		return Application{}, err
	}
	return Application{Commands: Commands{ChargePayment: charge, RefundPayment: refund}, Queries: queries}, nil
}
