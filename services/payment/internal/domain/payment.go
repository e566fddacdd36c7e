// Package domain holds payment's rules: at most one charge per order (the
// order id is the idempotency key), refunds that always answer, and a
// tombstone when a refund arrives before its charge so the late charge is
// declined instead of taking money for a cancelled order.
//
// The package has no infrastructure imports.
package domain

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidCommand is returned for a command the domain cannot accept.
var ErrInvalidCommand = errors.New("invalid payment command")

// Status is the state of an order's payment.
type Status string

// Payment statuses.
const (
	// StatusCharged: the customer was charged AmountCents.
	StatusCharged Status = "CHARGED"
	// StatusDeclined: the gateway refused; nothing was taken.
	StatusDeclined Status = "DECLINED"
	// StatusRefunded: charged, then refunded in full.
	StatusRefunded Status = "REFUNDED"
	// StatusVoided: a refund arrived before any charge; a later charge for
	// the order is declined.
	StatusVoided Status = "VOIDED"
)

// Reasons of declines that the gateway did not decide.
const (
	ReasonRefunded = "payment of this order was refunded"
	ReasonVoided   = "order refunded before it was charged"
)

// Payment is what payment did for one order. ID is empty for a voided
// order (no charge was ever attempted).
type Payment struct {
	ID          string
	OrderID     string
	CustomerID  string
	AmountCents int64
	Currency    string
	Status      Status
	// Reason explains a decline.
	Reason string
}

// Charge is a request to charge an order.
type Charge struct {
	OrderID     string
	CustomerID  string
	AmountCents int64
	Currency    string
}

// Validate checks the request.
func (c Charge) Validate() error {
	switch {
	case strings.TrimSpace(c.OrderID) == "":
		return fmt.Errorf("%w: order id is required", ErrInvalidCommand)
	case strings.TrimSpace(c.CustomerID) == "":
		return fmt.Errorf("%w: customer id is required", ErrInvalidCommand)
	case c.AmountCents <= 0:
		return fmt.Errorf("%w: amount must be positive, got %d", ErrInvalidCommand, c.AmountCents)
	case len(c.Currency) != 3:
		return fmt.Errorf("%w: currency %q", ErrInvalidCommand, c.Currency)
	}
	return nil
}

// GatewayVerdict is the simulated gateway's answer to a new charge.
type GatewayVerdict struct {
	Approved bool
	// PaymentID names the charge when approved.
	PaymentID string
	// Reason explains a decline.
	Reason string
	// Voided: the gateway refused because the order was refunded there
	// before this charge (a compensation that overtook its charge command).
	Voided bool
	// Refunded: the gateway approved this charge (Approved and PaymentID
	// are set) and has refunded it since. The gateway repeats its first
	// answer to a repeated charge, so a refund that reached it before this
	// charge's local transaction ran (the charge redelivered after a crash,
	// the refund's own transaction lost) leaves an approval that holds no
	// money: it must not be recorded as CHARGED.
	Refunded bool
}

// GatewayRefund is what the gateway answered to a refund: whether it holds
// no money for the order because it refunded a charge, by this refund or
// an earlier one, and which charge that was.
type GatewayRefund struct {
	Refunded    bool
	PaymentID   string
	AmountCents int64
	Currency    string
}

// Kind of ledger entry.
type EntryKind string

// Ledger entry kinds.
const (
	EntryCharge EntryKind = "charge"
	EntryRefund EntryKind = "refund"
)

// Entry is one money movement, for the audit ledger. AmountCents is
// positive for a charge and negative for a refund.
type Entry struct {
	PaymentID   string
	OrderID     string
	Kind        EntryKind
	AmountCents int64
	Currency    string
}

// ChargeResult is the outcome of DecideCharge.
type ChargeResult struct {
	// Payment answers the request: Charged (PaymentCharged) or anything
	// else (PaymentDeclined with Reason).
	Payment Payment
	// Changed is true when Payment must be stored.
	Changed bool
	// Entries are the ledger entries to append, in order.
	Entries []Entry
}

// DecideCharge decides a charge. existing is the order's payment, if any:
// the order id is the idempotency key, so a repeated request gets the
// earlier answer and never a second charge. verdict is the gateway's answer,
// used only when there is no earlier payment.
func DecideCharge(c Charge, existing *Payment, verdict GatewayVerdict) (ChargeResult, error) {
	if err := c.Validate(); err != nil {
		return ChargeResult{}, err
	}
	if existing != nil {
		switch existing.Status {
		case StatusCharged, StatusDeclined:
			return ChargeResult{Payment: *existing}, nil
		case StatusRefunded:
			p := *existing
			p.Reason = ReasonRefunded
			return ChargeResult{Payment: p}, nil
		case StatusVoided:
			p := *existing
			p.Reason = ReasonVoided
			return ChargeResult{Payment: p}, nil
		}
		return ChargeResult{}, fmt.Errorf("payment of order %s has unknown status %q", c.OrderID, existing.Status)
	}
	p := Payment{OrderID: c.OrderID, CustomerID: c.CustomerID, AmountCents: c.AmountCents, Currency: c.Currency}
	if verdict.Voided {
		// The refund reached the gateway first; its local transaction may
		// not have run yet, and must find the order VOIDED as it would
		// have had it run first.
		p.Status, p.Reason = StatusVoided, ReasonVoided
		return ChargeResult{Payment: p, Changed: true}, nil
	}
	if !verdict.Approved {
		p.Status = StatusDeclined
		p.Reason = verdict.Reason
		if p.Reason == "" {
			p.Reason = "declined by the gateway"
		}
		return ChargeResult{Payment: p, Changed: true}, nil
	}
	if strings.TrimSpace(verdict.PaymentID) == "" {
		return ChargeResult{}, errors.New("gateway approved a charge without a payment id")
	}
	p.ID = verdict.PaymentID
	if verdict.Refunded {
		// The refund reached the gateway after it charged and before this
		// transaction: the money was taken and given back. The payment is
		// recorded as the refund's transaction would have left it had it
		// run first (DecideRefund), both movements in the ledger, and the
		// charge is answered as a charge after a refund is.
		p.Status, p.Reason = StatusRefunded, ReasonRefunded
		return ChargeResult{Payment: p, Changed: true, Entries: chargedAndRefunded(p)}, nil
	}
	p.Status = StatusCharged
	return ChargeResult{
		Payment: p,
		Changed: true,
		Entries: []Entry{{PaymentID: p.ID, OrderID: p.OrderID, Kind: EntryCharge, AmountCents: p.AmountCents, Currency: p.Currency}},
	}, nil
}

// chargedAndRefunded are the ledger entries of a charge the gateway took
// and gave back before payment recorded it: the ledger audits every money
// movement at the gateway, so both are written, not neither.
func chargedAndRefunded(p Payment) []Entry {
	return []Entry{
		{PaymentID: p.ID, OrderID: p.OrderID, Kind: EntryCharge, AmountCents: p.AmountCents, Currency: p.Currency},
		{PaymentID: p.ID, OrderID: p.OrderID, Kind: EntryRefund, AmountCents: -p.AmountCents, Currency: p.Currency},
	}
}

// Refund is a request to refund an order's charge. PaymentID may be empty
// when the order does not know its charge.
type Refund struct {
	OrderID   string
	PaymentID string
	Currency  string
}

// Validate checks the request.
func (r Refund) Validate() error {
	if strings.TrimSpace(r.OrderID) == "" {
		return fmt.Errorf("%w: order id is required", ErrInvalidCommand)
	}
	return nil
}

// RefundResult is the outcome of DecideRefund.
type RefundResult struct {
	// PaymentID and AmountCents answer the request (PaymentRefunded);
	// AmountCents is 0 when there was nothing to refund.
	PaymentID   string
	AmountCents int64
	Currency    string
	// Payment is the order's payment to store when Changed.
	Payment Payment
	Changed bool
	// Entries are the ledger entries to append, in order.
	Entries []Entry
}

// DecideRefund refunds the order's charge in full. It always answers: a
// repeated refund repeats the amount refunded; a refund of a declined
// payment, of another payment id, or of an order never charged refunds
// nothing (and the last leaves a tombstone so a late charge is declined).
// gateway is the gateway's answer to this refund: it counts when payment
// has no charge on record, since the gateway may have charged the order
// without payment's transaction ever committing.
func DecideRefund(r Refund, existing *Payment, gateway GatewayRefund) (RefundResult, error) {
	if err := r.Validate(); err != nil {
		return RefundResult{}, err
	}
	nothing := RefundResult{PaymentID: r.PaymentID, Currency: r.Currency}
	if gateway.Refunded && (r.PaymentID == "" || r.PaymentID == gateway.PaymentID) &&
		(existing == nil || existing.Status == StatusVoided) {
		return refundedUnrecorded(r, gateway)
	}
	if existing == nil {
		nothing.Payment = Payment{OrderID: r.OrderID, Currency: r.Currency, Status: StatusVoided}
		nothing.Changed = true
		return nothing, nil
	}
	if r.PaymentID != "" && existing.ID != "" && r.PaymentID != existing.ID {
		return nothing, nil // not a charge of ours
	}
	switch existing.Status {
	case StatusDeclined, StatusVoided:
		return nothing, nil
	case StatusRefunded:
		return RefundResult{PaymentID: existing.ID, AmountCents: existing.AmountCents, Currency: existing.Currency}, nil
	case StatusCharged:
	default:
		return RefundResult{}, fmt.Errorf("payment of order %s has unknown status %q", r.OrderID, existing.Status)
	}
	p := *existing
	p.Status = StatusRefunded
	return RefundResult{
		PaymentID: p.ID, AmountCents: p.AmountCents, Currency: p.Currency,
		Payment: p, Changed: true,
		Entries: []Entry{{PaymentID: p.ID, OrderID: p.OrderID, Kind: EntryRefund, AmountCents: -p.AmountCents, Currency: p.Currency}},
	}, nil
}

// refundedUnrecorded records a charge the gateway took and refunded
// without payment having recorded it: the charge's transaction was lost (a
// crash after the gateway call) or has not run yet, and the saga refunded
// blindly. Payment never answered PaymentCharged for it, but money did move
// at the gateway, so an auditor finds it in the ledger as the charge the
// gateway took and its refund (net 0), under the gateway's payment id, and
// the saga's refund is answered with what was given back. The payment is
// REFUNDED: a late charge command then gets the answer to a charge after a
// refund, not another charge.
func refundedUnrecorded(r Refund, gateway GatewayRefund) (RefundResult, error) {
	if strings.TrimSpace(gateway.PaymentID) == "" || gateway.AmountCents <= 0 {
		return RefundResult{}, fmt.Errorf("gateway refunded order %s's charge %q of %d cents: want a payment id and a positive amount",
			r.OrderID, gateway.PaymentID, gateway.AmountCents)
	}
	currency := gateway.Currency
	if currency == "" {
		currency = r.Currency
	}
	p := Payment{ID: gateway.PaymentID, OrderID: r.OrderID, AmountCents: gateway.AmountCents, Currency: currency, Status: StatusRefunded}
	return RefundResult{
		PaymentID: p.ID, AmountCents: p.AmountCents, Currency: p.Currency,
		Payment: p, Changed: true, Entries: chargedAndRefunded(p),
	}, nil
}
