package domain

import "time"

// Event is a fact in an order's stream. The order's state is the fold of its
// events (see Rehydrate); events are values, never mutated once recorded. The
// interface is sealed: only the types of this file implement it. JSON tags let
// the event store and the events endpoint serialise them as they are.
type Event interface {
	// EventType is the stable name stored in the event store's type column.
	EventType() string
	isEvent()
}

// OrderPlaced starts every stream: the order was accepted and ReserveStock sent.
type OrderPlaced struct {
	OrderID         string    `json:"order_id"`
	CustomerID      string    `json:"customer_id"`
	Items           []Item    `json:"items"`
	Currency        string    `json:"currency"`
	TotalCents      int64     `json:"total_cents"`
	ShippingAddress Address   `json:"shipping_address"`
	Timeouts        Timeouts  `json:"timeouts"`
	PlacedAt        time.Time `json:"placed_at"`
	// StockDeadline is when the stock step times out.
	StockDeadline time.Time `json:"stock_deadline"`
}

// StockReserved: inventory reserved every item.
type StockReserved struct{}

// StockReservationFailed: inventory reserved nothing.
type StockReservationFailed struct {
	Reason string `json:"reason"`
}

// PaymentRequested: ChargePayment was sent. It is recorded at most once per
// order.
type PaymentRequested struct {
	AmountCents int64     `json:"amount_cents"`
	Deadline    time.Time `json:"deadline"`
}

// PaymentCharged: payment charged the order.
type PaymentCharged struct {
	PaymentID   string `json:"payment_id"`
	AmountCents int64  `json:"amount_cents"`
}

// PaymentDeclined: payment charged nothing.
type PaymentDeclined struct {
	Reason string `json:"reason"`
}

// ShipmentRequested: ScheduleShipment was sent.
type ShipmentRequested struct {
	Deadline time.Time `json:"deadline"`
}

// ShipmentScheduled: shipping scheduled the shipment.
type ShipmentScheduled struct {
	ShipmentID     string `json:"shipment_id"`
	Carrier        string `json:"carrier,omitempty"`
	TrackingNumber string `json:"tracking_number"`
}

// ShipmentFailed: shipping scheduled nothing.
type ShipmentFailed struct {
	Reason string `json:"reason"`
}

// CancellationRequested: the customer asked to cancel. The saga stops moving
// forward; the step in flight is compensated if its reply reveals an effect.
type CancellationRequested struct {
	Reason string `json:"reason"`
}

// StepTimedOut: the deadline passed while Steps were still awaiting a reply
// (a forward step in flight, or compensations not yet confirmed).
type StepTimedOut struct {
	Steps    []Step    `json:"steps"`
	Deadline time.Time `json:"deadline"`
}

// CompensationRequested: the undo command of each of Steps was sent
// (ReleaseStock, RefundPayment, CancelShipment). Outside a terminal state it
// also moves the order to CANCELLING. Recorded again when a compensation is
// retried or a late reply reveals an effect to undo.
type CompensationRequested struct {
	Steps    []Step    `json:"steps"`
	Reason   string    `json:"reason"`
	Deadline time.Time `json:"deadline"`
}

// StockReleased: inventory confirmed the release. Released says that it
// freed a reservation (inventory's reply listed items): the reservation's
// own reply, if it comes later (redelivered, or overtaken by the release),
// is then a duplicate, not a new reservation to release again. False for a
// release that found nothing, and in events recorded before the field.
type StockReleased struct {
	Released bool `json:"released,omitempty"`
}

// PaymentRefunded: payment confirmed the refund. PaymentID is empty when
// nothing had been charged.
type PaymentRefunded struct {
	PaymentID   string `json:"payment_id,omitempty"`
	AmountCents int64  `json:"amount_cents"`
}

// ShipmentCancelled: shipping confirmed the cancellation. ShipmentID is empty
// when nothing had been scheduled.
type ShipmentCancelled struct {
	ShipmentID string `json:"shipment_id,omitempty"`
}

// ExtraChargeDetected: payment reported a second, different charge for an
// order already charged; RefundPayment was sent for it. The order's own
// payment is unaffected.
type ExtraChargeDetected struct {
	PaymentID   string `json:"payment_id"`
	AmountCents int64  `json:"amount_cents"`
}

// OrderCompleted: stock reserved, payment charged, shipment scheduled.
type OrderCompleted struct {
	At time.Time `json:"at"`
}

// OrderCancelled: every step the order had done is compensated.
type OrderCancelled struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// OrderRejected: the stock could not be reserved; nothing else was done.
type OrderRejected struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func (OrderPlaced) EventType() string            { return "OrderPlaced" }
func (StockReserved) EventType() string          { return "StockReserved" }
func (StockReservationFailed) EventType() string { return "StockReservationFailed" }
func (PaymentRequested) EventType() string       { return "PaymentRequested" }
func (PaymentCharged) EventType() string         { return "PaymentCharged" }
func (PaymentDeclined) EventType() string        { return "PaymentDeclined" }
func (ShipmentRequested) EventType() string      { return "ShipmentRequested" }
func (ShipmentScheduled) EventType() string      { return "ShipmentScheduled" }
func (ShipmentFailed) EventType() string         { return "ShipmentFailed" }
func (CancellationRequested) EventType() string  { return "CancellationRequested" }
func (StepTimedOut) EventType() string           { return "StepTimedOut" }
func (CompensationRequested) EventType() string  { return "CompensationRequested" }
func (StockReleased) EventType() string          { return "StockReleased" }
func (PaymentRefunded) EventType() string        { return "PaymentRefunded" }
func (ShipmentCancelled) EventType() string      { return "ShipmentCancelled" }
func (ExtraChargeDetected) EventType() string    { return "ExtraChargeDetected" }
func (OrderCompleted) EventType() string         { return "OrderCompleted" }
func (OrderCancelled) EventType() string         { return "OrderCancelled" }
func (OrderRejected) EventType() string          { return "OrderRejected" }

func (OrderPlaced) isEvent()            {}
func (StockReserved) isEvent()          {}
func (StockReservationFailed) isEvent() {}
func (PaymentRequested) isEvent()       {}
func (PaymentCharged) isEvent()         {}
func (PaymentDeclined) isEvent()        {}
func (ShipmentRequested) isEvent()      {}
func (ShipmentScheduled) isEvent()      {}
func (ShipmentFailed) isEvent()         {}
func (CancellationRequested) isEvent()  {}
func (StepTimedOut) isEvent()           {}
func (CompensationRequested) isEvent()  {}
func (StockReleased) isEvent()          {}
func (PaymentRefunded) isEvent()        {}
func (ShipmentCancelled) isEvent()      {}
func (ExtraChargeDetected) isEvent()    {}
func (OrderCompleted) isEvent()         {}
func (OrderCancelled) isEvent()         {}
func (OrderRejected) isEvent()          {}
