// Package domain holds shipping's rules: one shipment per order, cancelled
// on request (always answered, idempotent), and a tombstone when a cancel
// arrives before the shipment is scheduled so the late request fails
// instead of shipping a cancelled order.
//
// Shipments are never dispatched in this simulation, so every scheduled
// shipment can still be cancelled.
//
// The package has no infrastructure imports.
package domain

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidCommand is returned for a command the domain cannot accept.
var ErrInvalidCommand = errors.New("invalid shipping command")

// Status is the state of an order's shipment.
type Status string

// Shipment statuses.
const (
	// StatusScheduled: the carrier accepted the shipment.
	StatusScheduled Status = "SCHEDULED"
	// StatusFailed: the carrier refused it.
	StatusFailed Status = "FAILED"
	// StatusCancelled: scheduled, then cancelled.
	StatusCancelled Status = "CANCELLED"
	// StatusVoided: a cancel arrived before any schedule request; a later
	// request for the order fails.
	StatusVoided Status = "VOIDED"
)

// Reasons of failures the carrier did not decide.
const (
	ReasonCancelled = "shipment of this order was cancelled"
	ReasonVoided    = "order cancelled before its shipment was scheduled"
)

// Line is a quantity of one SKU.
type Line struct {
	SKU      string
	Quantity int
}

// Address is where a shipment goes.
type Address struct {
	Name       string
	Line1      string
	Line2      string
	City       string
	PostalCode string
	Country    string
}

// Shipment is what shipping did for one order. ID is empty unless the
// carrier accepted it.
type Shipment struct {
	ID             string
	OrderID        string
	Status         Status
	Carrier        string
	TrackingNumber string
	Lines          []Line
	Address        Address
	// Reason explains a failure.
	Reason string
}

// Schedule is a request to ship an order.
type Schedule struct {
	OrderID string
	Lines   []Line
	Address Address
}

// Validate checks the request.
func (s Schedule) Validate() error {
	if strings.TrimSpace(s.OrderID) == "" {
		return fmt.Errorf("%w: order id is required", ErrInvalidCommand)
	}
	if len(s.Lines) == 0 {
		return fmt.Errorf("%w: nothing to ship", ErrInvalidCommand)
	}
	for i, l := range s.Lines {
		if strings.TrimSpace(l.SKU) == "" || l.Quantity <= 0 {
			return fmt.Errorf("%w: line %d: sku %q quantity %d", ErrInvalidCommand, i, l.SKU, l.Quantity)
		}
	}
	if strings.TrimSpace(s.Address.Line1) == "" || strings.TrimSpace(s.Address.City) == "" || strings.TrimSpace(s.Address.Country) == "" {
		return fmt.Errorf("%w: address needs line1, city and country", ErrInvalidCommand)
	}
	return nil
}

// CarrierVerdict is the simulated carrier's answer to a new shipment.
type CarrierVerdict struct {
	Accepted       bool
	ShipmentID     string
	Carrier        string
	TrackingNumber string
	// Reason explains a refusal.
	Reason string
	// Voided: the carrier refused because the order was cancelled there
	// before this booking (a compensation that overtook its command).
	Voided bool
	// Withdrawn: the carrier accepted this booking (Accepted and the
	// booking's fields are set) and has withdrawn it since. The carrier
	// repeats its first answer to a repeated booking, so a cancellation
	// that reached it before this booking's local transaction ran (the
	// request redelivered after a crash, the cancellation's own
	// transaction lost) leaves an acceptance that ships nothing: it must
	// not be recorded as SCHEDULED.
	Withdrawn bool
}

// CarrierCancel is what the carrier answered to a cancellation: whether it
// holds no booking for the order because it withdrew one, by this
// cancellation or an earlier one, and which booking that was.
type CarrierCancel struct {
	Withdrawn      bool
	ShipmentID     string
	Carrier        string
	TrackingNumber string
}

// ScheduleResult is the outcome of DecideSchedule.
type ScheduleResult struct {
	// Shipment answers the request: Scheduled (ShipmentScheduled) or
	// anything else (ShipmentFailed with Reason).
	Shipment Shipment
	// Changed is true when Shipment must be stored.
	Changed bool
}

// DecideSchedule decides a shipment. A repeated request gets the earlier
// answer and never a second shipment; verdict is used only when there is
// no earlier shipment.
func DecideSchedule(s Schedule, existing *Shipment, verdict CarrierVerdict) (ScheduleResult, error) {
	if err := s.Validate(); err != nil {
		return ScheduleResult{}, err
	}
	if existing != nil {
		switch existing.Status {
		case StatusScheduled, StatusFailed:
			return ScheduleResult{Shipment: *existing}, nil
		case StatusCancelled:
			sh := *existing
			sh.Reason = ReasonCancelled
			return ScheduleResult{Shipment: sh}, nil
		case StatusVoided:
			sh := *existing
			sh.Reason = ReasonVoided
			return ScheduleResult{Shipment: sh}, nil
		}
		return ScheduleResult{}, fmt.Errorf("shipment of order %s has unknown status %q", s.OrderID, existing.Status)
	}
	sh := Shipment{OrderID: s.OrderID, Lines: append([]Line(nil), s.Lines...), Address: s.Address}
	if verdict.Voided {
		// The cancellation reached the carrier first; its local
		// transaction may not have run yet, and must find the order
		// VOIDED as it would have had it run first.
		sh.Status, sh.Reason = StatusVoided, ReasonVoided
		return ScheduleResult{Shipment: sh, Changed: true}, nil
	}
	if !verdict.Accepted {
		sh.Status, sh.Reason = StatusFailed, verdict.Reason
		if sh.Reason == "" {
			sh.Reason = "refused by the carrier"
		}
		return ScheduleResult{Shipment: sh, Changed: true}, nil
	}
	if strings.TrimSpace(verdict.ShipmentID) == "" || strings.TrimSpace(verdict.TrackingNumber) == "" {
		return ScheduleResult{}, errors.New("carrier accepted a shipment without an id or tracking number")
	}
	sh.Status, sh.ID, sh.Carrier, sh.TrackingNumber = StatusScheduled, verdict.ShipmentID, verdict.Carrier, verdict.TrackingNumber
	if verdict.Withdrawn {
		// The cancellation reached the carrier after it booked and before
		// this transaction: the shipment is recorded as the cancellation's
		// transaction would have left it had it run first (DecideCancel),
		// and the request is answered as one after a cancellation is.
		sh.Status, sh.Reason = StatusCancelled, ReasonCancelled
	}
	return ScheduleResult{Shipment: sh, Changed: true}, nil
}

// Cancel is a request to cancel an order's shipment. ShipmentID may be
// empty when the order does not know its shipment.
type Cancel struct {
	OrderID    string
	ShipmentID string
}

// Validate checks the request.
func (c Cancel) Validate() error {
	if strings.TrimSpace(c.OrderID) == "" {
		return fmt.Errorf("%w: order id is required", ErrInvalidCommand)
	}
	return nil
}

// CancelResult is the outcome of DecideCancel.
type CancelResult struct {
	// ShipmentID answers the request (ShipmentCancelled).
	ShipmentID string
	// Cancelled is true when a scheduled shipment is (or was) cancelled,
	// false when there was nothing to cancel.
	Cancelled bool
	// Shipment is the order's shipment to store when Changed.
	Shipment Shipment
	Changed  bool
}

// DecideCancel cancels the order's shipment. It always answers: a repeated
// cancel repeats the answer; cancelling a failed shipment, another
// shipment id, or an order never scheduled cancels nothing (and the last
// leaves a tombstone so a late schedule request fails). carrier is the
// carrier's answer to this cancellation: it counts when shipping has no
// shipment on record, since the carrier may have booked the order without
// shipping's transaction ever committing.
func DecideCancel(c Cancel, existing *Shipment, carrier CarrierCancel) (CancelResult, error) {
	if err := c.Validate(); err != nil {
		return CancelResult{}, err
	}
	nothing := CancelResult{ShipmentID: c.ShipmentID}
	if carrier.Withdrawn && (c.ShipmentID == "" || c.ShipmentID == carrier.ShipmentID) &&
		(existing == nil || existing.Status == StatusVoided) {
		return withdrawnUnrecorded(c, carrier)
	}
	if existing == nil {
		nothing.Shipment = Shipment{OrderID: c.OrderID, Status: StatusVoided}
		nothing.Changed = true
		return nothing, nil
	}
	if c.ShipmentID != "" && existing.ID != "" && c.ShipmentID != existing.ID {
		return nothing, nil // not a shipment of ours
	}
	switch existing.Status {
	case StatusFailed, StatusVoided:
		return nothing, nil
	case StatusCancelled:
		return CancelResult{ShipmentID: existing.ID, Cancelled: true}, nil
	case StatusScheduled:
	default:
		return CancelResult{}, fmt.Errorf("shipment of order %s has unknown status %q", c.OrderID, existing.Status)
	}
	sh := *existing
	sh.Status = StatusCancelled
	return CancelResult{ShipmentID: sh.ID, Cancelled: true, Shipment: sh, Changed: true}, nil
}

// withdrawnUnrecorded records a booking the carrier made and withdrew
// without shipping having recorded it: the booking's transaction was lost
// (a crash after the carrier call) or has not run yet, and the saga
// cancelled blindly. Shipping never answered ShipmentScheduled for it, but
// the carrier did book a parcel, so the shipment is on record as CANCELLED
// under the carrier's shipment id (the lines and address came with the
// lost request and are not known here), and the saga's cancellation is
// answered with what was withdrawn. A late schedule request then gets the
// answer to a request after a cancellation, not a booking.
func withdrawnUnrecorded(c Cancel, carrier CarrierCancel) (CancelResult, error) {
	if strings.TrimSpace(carrier.ShipmentID) == "" {
		return CancelResult{}, fmt.Errorf("carrier withdrew a booking of order %s without a shipment id", c.OrderID)
	}
	sh := Shipment{ID: carrier.ShipmentID, OrderID: c.OrderID, Status: StatusCancelled,
		Carrier: carrier.Carrier, TrackingNumber: carrier.TrackingNumber}
	return CancelResult{ShipmentID: sh.ID, Cancelled: true, Shipment: sh, Changed: true}, nil
}
