package app

import (
	"context"
	"errors"
	"time"

	"github.com/orderflow/orderflow/services/payment/internal/domain"
)

// LedgerEntry is a recorded ledger entry.
type LedgerEntry struct {
	ID int64
	domain.Entry
	RecordedAt time.Time
}

// Totals sums the payments and the ledger, for audits.
type Totals struct {
	// Payments counts the orders by payment status.
	Payments map[domain.Status]int `json:"payments"`
	// ChargedCents and RefundedCents sum the ledger's charges and refunds
	// (both positive); NetCents is their difference.
	ChargedCents  int64 `json:"charged_cents"`
	RefundedCents int64 `json:"refunded_cents"`
	NetCents      int64 `json:"net_cents"`
	// OutstandingCents sums the payments in status CHARGED: it equals
	// NetCents when the ledger agrees with the payments.
	OutstandingCents int64 `json:"outstanding_cents"`
	// OrdersChargedTwice counts orders with more than one charge entry;
	// always 0.
	OrdersChargedTwice int `json:"orders_charged_twice"`
}

// State is Totals plus a verdict.
type State struct {
	Totals
	// Consistent is true when the ledger agrees with the payments and no
	// order was charged twice.
	Consistent bool `json:"consistent"`
}

// Queries are payment's read-only questions.
type Queries struct {
	rm ReadModel
	gw Gateway
}

// NewQueries returns the queries over rm and the gateway's books.
func NewQueries(rm ReadModel, gw Gateway) (Queries, error) {
	if rm == nil || gw == nil {
		return Queries{}, errors.New("queries: read model and gateway are required")
	}
	return Queries{rm: rm, gw: gw}, nil
}

// GatewayRecords lists the payment provider's books, newest first.
func (q Queries) GatewayRecords(ctx context.Context, f Filter) ([]GatewayRecord, error) {
	return q.gw.Records(ctx, f)
}

// Payments lists payments, newest first.
func (q Queries) Payments(ctx context.Context, f Filter) ([]domain.Payment, error) {
	return q.rm.Payments(ctx, f)
}

// Ledger lists ledger entries, oldest first.
func (q Queries) Ledger(ctx context.Context, f Filter) ([]LedgerEntry, error) {
	return q.rm.Ledger(ctx, f)
}

// State returns the totals and whether they are consistent.
func (q Queries) State(ctx context.Context) (State, error) {
	t, err := q.rm.Totals(ctx)
	if err != nil {
		return State{}, err
	}
	return State{Totals: t, Consistent: t.NetCents == t.OutstandingCents && t.OrdersChargedTwice == 0}, nil
}
