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
	ID          string `json:"payment_id,omitempty"`
	OrderID     string `json:"order_id"`
	CustomerID  string `json:"customer_id,omitempty"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Status      Status `json:"status"`
	// Reason explains a decline.
	Reason string `json:"reason,omitempty"`
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
	PaymentID   string    `json:"payment_id"`
	OrderID     string    `json:"order_id"`
	Kind        EntryKind `json:"kind"`
	AmountCents int64     `json:"amount_cents"`
	Currency    string    `json:"currency"`
}

// ChargeResult is the outcome of DecideCharge.
type ChargeResult struct {
	// Payment answers the request: Charged (PaymentCharged) or anything
	// else (PaymentDeclined with Reason).
	Payment Payment
	// Changed is true when Payment must be stored.
	Changed bool
	// Entry is the ledger entry to append, if any.
	Entry *Entry
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
	p.ID, p.Status = verdict.PaymentID, StatusCharged
	return ChargeResult{
		Payment: p,
		Changed: true,
		Entry:   &Entry{PaymentID: p.ID, OrderID: p.OrderID, Kind: EntryCharge, AmountCents: p.AmountCents, Currency: p.Currency},
	}, nil
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
	Entry   *Entry
}

// DecideRefund refunds the order's charge in full. It always answers: a
// repeated refund repeats the amount refunded; a refund of a declined
// payment, of another payment id, or of an order never charged refunds
// nothing (and the last leaves a tombstone so a late charge is declined).
func DecideRefund(r Refund, existing *Payment) (RefundResult, error) {
	if err := r.Validate(); err != nil {
		return RefundResult{}, err
	}
	nothing := RefundResult{PaymentID: r.PaymentID, Currency: r.Currency}
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
		Entry: &Entry{PaymentID: p.ID, OrderID: p.OrderID, Kind: EntryRefund, AmountCents: -p.AmountCents, Currency: p.Currency},
	}, nil
}
