// Package app is shipping's application layer: one command per file, each
// asking the (simulated) carrier, then deciding, storing and emitting the
// answer in one local transaction, plus the read-only queries. It knows the
// message contracts but no infrastructure.
package app

import (
	"context"
	"errors"
	"time"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
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
	// Shipment returns the order's shipment, or nil if none.
	Shipment(ctx context.Context, orderID string) (*domain.Shipment, error)
	SaveShipment(ctx context.Context, s domain.Shipment) error
	// Emit stores m in the outbox; it is published if the transaction
	// commits.
	Emit(ctx context.Context, m contracts.Message) error
}

// Carrier books shipments. Both calls happen before the local
// transaction, so a slow carrier holds no database lock; an error is
// transient (retried).
//
// Because they come before the inbox's duplicate check, a redelivered
// command calls the carrier again, and so does a retry after a crash
// between the call and the local commit. The order id is the carrier's
// idempotency key: a second Book of one order returns the first booking
// instead of booking a second parcel, and a Cancel that comes before any
// Book voids the order at the carrier, so that a late schedule command is
// refused there instead of shipping an order that was compensated.
//
// So either call may meet an effect whose local transaction never ran: a
// Cancel may withdraw a booking shipping has not recorded, and a Book
// repeated after a Cancel answers with a booking already withdrawn. Both
// say so (CarrierCancel, CarrierVerdict.Withdrawn), so that shipping
// records the booking the carrier made, and schedules none it withdrew.
type Carrier interface {
	// Book books the order's shipment; idempotent per s.OrderID.
	Book(ctx context.Context, s domain.Schedule) (domain.CarrierVerdict, error)
	// Cancel withdraws the order's booking if it has one (only if it is
	// shipmentID, when that is not empty), and otherwise voids the order so
	// that no later Book books it; idempotent per order id. It returns the
	// booking the carrier has withdrawn, by this call or an earlier one, if
	// any.
	Cancel(ctx context.Context, orderID, shipmentID string) (domain.CarrierCancel, error)
	// Records lists the carrier's own books, per order, newest first: what
	// an audit compares with the shipments.
	Records(ctx context.Context, f Filter) ([]CarrierRecord, error)
}

// CarrierRecord is the carrier's line for one order.
type CarrierRecord struct {
	OrderID string `json:"order_id"`
	// Outcome of the first Book: ACCEPTED (booked), REFUSED or VOIDED
	// (cancelled before any Book).
	Outcome string `json:"outcome"`
	// Reference is the shipment id of an accepted booking.
	Reference string `json:"reference,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// Cancelled: the booking was withdrawn.
	Cancelled bool `json:"cancelled"`
	// Requests and Cancels count the Book and Cancel calls; only the first
	// of each had an effect.
	Requests  int       `json:"requests"`
	Cancels   int       `json:"cancels"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Filter narrows the shipment list.
type Filter struct {
	OrderID string
	// Limit caps the list; 0 means 1000.
	Limit int
}

// ReadModel answers the queries.
type ReadModel interface {
	Shipments(ctx context.Context, f Filter) ([]domain.Shipment, error)
	Counts(ctx context.Context) (map[domain.Status]int, error)
}

// Application is what the ports call.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands are shipping's commands.
type Commands struct {
	ScheduleShipment ScheduleShipmentHandler
	CancelShipment   CancelShipmentHandler
}

// New wires the application.
func New(uow UnitOfWork, carrier Carrier, rm ReadModel) (Application, error) {
	schedule, err := NewScheduleShipmentHandler(uow, carrier)
	if err != nil {
		return Application{}, err
	}
	cancel, err := NewCancelShipmentHandler(uow, carrier)
	if err != nil {
		return Application{}, err
	}
	if rm == nil {
		return Application{}, errors.New("queries: read model is nil")
	}
	return Application{Commands: Commands{ScheduleShipment: schedule, CancelShipment: cancel}, Queries: Queries{rm: rm, carrier: carrier}}, nil
}
