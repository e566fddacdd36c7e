package domain

// CommandKind names a command the saga sends to another service.
type CommandKind string

const (
	ReserveStock     CommandKind = "ReserveStock"
	ReleaseStock     CommandKind = "ReleaseStock"
	ChargePayment    CommandKind = "ChargePayment"
	RefundPayment    CommandKind = "RefundPayment"
	ScheduleShipment CommandKind = "ScheduleShipment"
	CancelShipment   CommandKind = "CancelShipment"
)

// Command is a message the saga asks the app layer to send, in the same
// transaction as the decision's events (the outbox). The fields a kind does
// not use are zero:
//
//	ReserveStock      OrderID, Items
//	ReleaseStock      OrderID, Items, Reason
//	ChargePayment     OrderID, CustomerID, AmountCents, Currency
//	RefundPayment     OrderID, PaymentID ("" if the charge is not known), AmountCents, Currency, Reason
//	ScheduleShipment  OrderID, Items, Address
//	CancelShipment    OrderID, ShipmentID ("" if the shipment is not known), Reason
//
// Every compensation (Release, Refund, Cancel) may be sent more than once and
// before the effect it undoes is known to exist; the services treat them as
// idempotent and always reply.
type Command struct {
	Kind        CommandKind
	OrderID     string
	Items       []Item
	CustomerID  string
	AmountCents int64
	Currency    string
	PaymentID   string
	ShipmentID  string
	Address     Address
	Reason      string
}

// Decision is the outcome of one command or reply applied to an order: the
// events to append to its stream (already applied to the aggregate and also
// found in PendingEvents) and the commands to send. Both empty means the input
// was a duplicate, late, or otherwise without effect: acknowledge it.
type Decision struct {
	Events   []Event
	Commands []Command
}

// IsEmpty reports whether the decision changes nothing.
func (d Decision) IsEmpty() bool { return len(d.Events) == 0 && len(d.Commands) == 0 }
