package contracts

import "time"

// Message is implemented by every contract type in this package, and only by
// them: the interface is sealed so that Decode's result can be type-switched
// exhaustively. Methods have value receivers; pass and switch on values.
type Message interface {
	// MessageType is the value of the "type" metadata key, e.g.
	// "inventory.ReserveStock".
	MessageType() string
	// Topic is the topic the message is published on.
	Topic() string
	// CorrelationID is the id of the order the message belongs to (its
	// order_id field), written to the "correlation_id" metadata key.
	CorrelationID() string

	// validate reports the problems that make the message unusable, wrapping
	// ErrInvalidMessage, or nil.
	validate() error
}

// Message types: the value of the "type" metadata key.
const (
	TypeReserveStock           = "inventory.ReserveStock"
	TypeReleaseStock           = "inventory.ReleaseStock"
	TypeStockReserved          = "inventory.StockReserved"
	TypeStockReservationFailed = "inventory.StockReservationFailed"
	TypeStockReleased          = "inventory.StockReleased"

	TypeChargePayment   = "payment.ChargePayment"
	TypeRefundPayment   = "payment.RefundPayment"
	TypePaymentCharged  = "payment.PaymentCharged"
	TypePaymentDeclined = "payment.PaymentDeclined"
	TypePaymentRefunded = "payment.PaymentRefunded"

	TypeScheduleShipment  = "shipping.ScheduleShipment"
	TypeCancelShipment    = "shipping.CancelShipment"
	TypeShipmentScheduled = "shipping.ShipmentScheduled"
	TypeShipmentFailed    = "shipping.ShipmentFailed"
	TypeShipmentCancelled = "shipping.ShipmentCancelled"

	TypeOrderPlaced    = "order.OrderPlaced"
	TypeOrderCompleted = "order.OrderCompleted"
	TypeOrderCancelled = "order.OrderCancelled"
	TypeOrderRejected  = "order.OrderRejected"
)

// Item is one order line: a SKU and a positive quantity. Within one message
// every SKU appears at most once.
type Item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Address is a shipping address. Name, Line1, City and Country (ISO 3166-1
// alpha-2, upper case) are required.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country"`
}

// Amounts are integer minor units ("cents") of an ISO 4217 currency code in
// upper case. Timestamps travel as RFC 3339 and Decode returns them in UTC.

// ---- inventory ---------------------------------------------------------------

// ReserveStock asks inventory to reserve every item of an order, all or
// nothing. Inventory replies StockReserved or StockReservationFailed, once per
// order however often the command is delivered.
type ReserveStock struct {
	OrderID string `json:"order_id"`
	Items   []Item `json:"items"`
}

// ReleaseStock asks inventory to release what it reserved for the order. It is
// idempotent and is also sent when the reservation is not known to exist (after
// a timeout): inventory always replies StockReleased, and a later ReserveStock
// for the same order must then be refused.
type ReleaseStock struct {
	OrderID string `json:"order_id"`
	Items   []Item `json:"items"`
	Reason  string `json:"reason,omitempty"`
}

// StockReserved reports that every item of the order is reserved.
type StockReserved struct {
	OrderID string `json:"order_id"`
	Items   []Item `json:"items"`
}

// StockReservationFailed reports that nothing was reserved. Unavailable lists
// the items that were short, when inventory knows them.
type StockReservationFailed struct {
	OrderID     string `json:"order_id"`
	Reason      string `json:"reason"`
	Unavailable []Item `json:"unavailable"`
}

// StockReleased confirms a ReleaseStock. Items lists what the release freed;
// it is empty when nothing was reserved.
type StockReleased struct {
	OrderID string `json:"order_id"`
	Items   []Item `json:"items"`
}

// ---- payment -----------------------------------------------------------------

// ChargePayment asks payment to charge the customer for the order. Payment
// charges an order at most once, whatever the number of deliveries.
type ChargePayment struct {
	OrderID     string `json:"order_id"`
	CustomerID  string `json:"customer_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
}

// RefundPayment asks payment to refund the order's charge. PaymentID is empty
// when the charge is not known to exist (after a timeout); payment then refunds
// whatever it charged for the order, if anything, and always replies
// PaymentRefunded. A refund processed before the charge it targets must make
// that charge be declined.
type RefundPayment struct {
	OrderID     string `json:"order_id"`
	PaymentID   string `json:"payment_id,omitempty"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Reason      string `json:"reason,omitempty"`
}

// PaymentCharged reports a successful charge.
type PaymentCharged struct {
	OrderID     string `json:"order_id"`
	PaymentID   string `json:"payment_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
}

// PaymentDeclined reports that nothing was charged.
type PaymentDeclined struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

// PaymentRefunded confirms a RefundPayment. PaymentID names the charge that
// is refunded, on every reply to every RefundPayment of the order, including
// repeats; it is empty, and AmountCents 0, only when nothing was ever charged.
// The order service does not count a reply that names no charge, or another
// one, as the refund of the charge it knows.
type PaymentRefunded struct {
	OrderID     string `json:"order_id"`
	PaymentID   string `json:"payment_id,omitempty"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
}

// ---- shipping ----------------------------------------------------------------

// ScheduleShipment asks shipping to schedule the delivery of the order's items.
type ScheduleShipment struct {
	OrderID string  `json:"order_id"`
	Items   []Item  `json:"items"`
	Address Address `json:"address"`
}

// CancelShipment asks shipping to cancel the order's shipment. ShipmentID is
// empty when the shipment is not known to exist; shipping always replies
// ShipmentCancelled. A cancel processed before the shipment is scheduled must
// make ScheduleShipment fail.
type CancelShipment struct {
	OrderID    string `json:"order_id"`
	ShipmentID string `json:"shipment_id,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// ShipmentScheduled reports a scheduled shipment.
type ShipmentScheduled struct {
	OrderID        string `json:"order_id"`
	ShipmentID     string `json:"shipment_id"`
	Carrier        string `json:"carrier,omitempty"`
	TrackingNumber string `json:"tracking_number"`
}

// ShipmentFailed reports that no shipment was scheduled.
type ShipmentFailed struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

// ShipmentCancelled confirms a CancelShipment. ShipmentID names the cancelled
// shipment on every reply, including repeats; it is empty only when nothing
// was ever scheduled for the order.
type ShipmentCancelled struct {
	OrderID    string `json:"order_id"`
	ShipmentID string `json:"shipment_id,omitempty"`
}

// ---- order (public) ----------------------------------------------------------

// OrderPlaced announces an accepted order.
type OrderPlaced struct {
	OrderID     string    `json:"order_id"`
	CustomerID  string    `json:"customer_id"`
	Items       []Item    `json:"items"`
	AmountCents int64     `json:"amount_cents"`
	Currency    string    `json:"currency"`
	PlacedAt    time.Time `json:"placed_at"`
}

// OrderCompleted announces an order whose stock is reserved, payment charged
// and shipment scheduled.
type OrderCompleted struct {
	OrderID        string    `json:"order_id"`
	PaymentID      string    `json:"payment_id"`
	ShipmentID     string    `json:"shipment_id"`
	TrackingNumber string    `json:"tracking_number"`
	CompletedAt    time.Time `json:"completed_at"`
}

// OrderCancelled announces an order cancelled (by the customer, a declined
// payment, a failed shipment or a timeout) once every step it had done is
// compensated.
type OrderCancelled struct {
	OrderID     string    `json:"order_id"`
	Reason      string    `json:"reason"`
	CancelledAt time.Time `json:"cancelled_at"`
}

// OrderRejected announces an order that could not start: its stock could not
// be reserved.
type OrderRejected struct {
	OrderID    string    `json:"order_id"`
	Reason     string    `json:"reason"`
	RejectedAt time.Time `json:"rejected_at"`
}

// ---- Message implementations -------------------------------------------------

func (m ReserveStock) MessageType() string           { return TypeReserveStock }
func (m ReleaseStock) MessageType() string           { return TypeReleaseStock }
func (m StockReserved) MessageType() string          { return TypeStockReserved }
func (m StockReservationFailed) MessageType() string { return TypeStockReservationFailed }
func (m StockReleased) MessageType() string          { return TypeStockReleased }
func (m ChargePayment) MessageType() string          { return TypeChargePayment }
func (m RefundPayment) MessageType() string          { return TypeRefundPayment }
func (m PaymentCharged) MessageType() string         { return TypePaymentCharged }
func (m PaymentDeclined) MessageType() string        { return TypePaymentDeclined }
func (m PaymentRefunded) MessageType() string        { return TypePaymentRefunded }
func (m ScheduleShipment) MessageType() string       { return TypeScheduleShipment }
func (m CancelShipment) MessageType() string         { return TypeCancelShipment }
func (m ShipmentScheduled) MessageType() string      { return TypeShipmentScheduled }
func (m ShipmentFailed) MessageType() string         { return TypeShipmentFailed }
func (m ShipmentCancelled) MessageType() string      { return TypeShipmentCancelled }
func (m OrderPlaced) MessageType() string            { return TypeOrderPlaced }
func (m OrderCompleted) MessageType() string         { return TypeOrderCompleted }
func (m OrderCancelled) MessageType() string         { return TypeOrderCancelled }
func (m OrderRejected) MessageType() string          { return TypeOrderRejected }

func (m ReserveStock) Topic() string           { return TopicInventoryCommands }
func (m ReleaseStock) Topic() string           { return TopicInventoryCommands }
func (m StockReserved) Topic() string          { return TopicInventoryEvents }
func (m StockReservationFailed) Topic() string { return TopicInventoryEvents }
func (m StockReleased) Topic() string          { return TopicInventoryEvents }
func (m ChargePayment) Topic() string          { return TopicPaymentCommands }
func (m RefundPayment) Topic() string          { return TopicPaymentCommands }
func (m PaymentCharged) Topic() string         { return TopicPaymentEvents }
func (m PaymentDeclined) Topic() string        { return TopicPaymentEvents }
func (m PaymentRefunded) Topic() string        { return TopicPaymentEvents }
func (m ScheduleShipment) Topic() string       { return TopicShippingCommands }
func (m CancelShipment) Topic() string         { return TopicShippingCommands }
func (m ShipmentScheduled) Topic() string      { return TopicShippingEvents }
func (m ShipmentFailed) Topic() string         { return TopicShippingEvents }
func (m ShipmentCancelled) Topic() string      { return TopicShippingEvents }
func (m OrderPlaced) Topic() string            { return TopicOrderEvents }
func (m OrderCompleted) Topic() string         { return TopicOrderEvents }
func (m OrderCancelled) Topic() string         { return TopicOrderEvents }
func (m OrderRejected) Topic() string          { return TopicOrderEvents }

func (m ReserveStock) CorrelationID() string           { return m.OrderID }
func (m ReleaseStock) CorrelationID() string           { return m.OrderID }
func (m StockReserved) CorrelationID() string          { return m.OrderID }
func (m StockReservationFailed) CorrelationID() string { return m.OrderID }
func (m StockReleased) CorrelationID() string          { return m.OrderID }
func (m ChargePayment) CorrelationID() string          { return m.OrderID }
func (m RefundPayment) CorrelationID() string          { return m.OrderID }
func (m PaymentCharged) CorrelationID() string         { return m.OrderID }
func (m PaymentDeclined) CorrelationID() string        { return m.OrderID }
func (m PaymentRefunded) CorrelationID() string        { return m.OrderID }
func (m ScheduleShipment) CorrelationID() string       { return m.OrderID }
func (m CancelShipment) CorrelationID() string         { return m.OrderID }
func (m ShipmentScheduled) CorrelationID() string      { return m.OrderID }
func (m ShipmentFailed) CorrelationID() string         { return m.OrderID }
func (m ShipmentCancelled) CorrelationID() string      { return m.OrderID }
func (m OrderPlaced) CorrelationID() string            { return m.OrderID }
func (m OrderCompleted) CorrelationID() string         { return m.OrderID }
func (m OrderCancelled) CorrelationID() string         { return m.OrderID }
func (m OrderRejected) CorrelationID() string          { return m.OrderID }
