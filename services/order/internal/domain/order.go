// Package domain holds the order service's event-sourced Order aggregate and
// the orchestrated saga that drives it (reserve stock, charge payment,
// schedule shipment, and their compensations). It does no I/O: every decision
// takes the current time as an argument and returns the events to append and
// the commands to send.
package domain

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Item is one order line. Quantity is positive; UnitPriceCents is the price of
// one unit in the order's currency and may be 0 for a free item.
type Item struct {
	SKU            string `json:"sku"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// Address is where the order ships. Name, Line1, City and Country (ISO 3166-1
// alpha-2, upper case) are required.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country"`
}

// NewOrder is what PlaceOrder needs to accept an order.
type NewOrder struct {
	// ID is chosen by the caller (a UUID), so that a retried request with the
	// same idempotency key maps to the same stream.
	ID              string
	CustomerID      string
	Items           []Item
	Currency        string // ISO 4217, upper case
	ShippingAddress Address
}

// Validate reports the invariants p breaks, as PlaceOrder would: a
// *ValidationError (ErrInvalidOrder) naming each field at fault, or nil.
// It lets a caller refuse an order before it does anything costly, such
// as taking a database's write lock.
func (p NewOrder) Validate() error {
	if _, err := validateNewOrder(p); err != nil {
		return err
	}
	return nil
}

// Timeouts are the per-step deadlines of the saga: how long the order waits
// for a service's reply before compensating, and how long it waits for a
// compensation's confirmation before resending it (Compensation, doubled
// after each resend up to MaxCompensationRetryInterval). They are recorded
// in OrderPlaced, so an order keeps the timeouts it was placed with across
// restarts and redeployments.
type Timeouts struct {
	Stock        time.Duration `json:"stock"`
	Payment      time.Duration `json:"payment"`
	Shipment     time.Duration `json:"shipment"`
	Compensation time.Duration `json:"compensation"`
}

// DefaultTimeouts returns the timeouts used for zero fields: 30 s per step.
func DefaultTimeouts() Timeouts {
	return Timeouts{Stock: 30 * time.Second, Payment: 30 * time.Second, Shipment: 30 * time.Second, Compensation: 30 * time.Second}
}

func (t *Timeouts) setDefaults() {
	d := DefaultTimeouts()
	for _, p := range []struct{ v, def *time.Duration }{
		{&t.Stock, &d.Stock}, {&t.Payment, &d.Payment}, {&t.Shipment, &d.Shipment}, {&t.Compensation, &d.Compensation},
	} {
		if *p.v == 0 {
			*p.v = *p.def
		}
	}
}

// Validate rejects negative timeouts.
func (t Timeouts) Validate() error {
	if t.Stock < 0 || t.Payment < 0 || t.Shipment < 0 || t.Compensation < 0 {
		return fmt.Errorf("timeouts must not be negative: %+v", t)
	}
	return nil
}

// Status is where an order stands. COMPLETED, CANCELLED and REJECTED are
// terminal: no input moves an order out of them.
type Status string

const (
	StatusPending        Status = "PENDING"         // ReserveStock sent
	StatusStockReserved  Status = "STOCK_RESERVED"  // ChargePayment sent
	StatusPaymentCharged Status = "PAYMENT_CHARGED" // ScheduleShipment sent
	StatusCancelling     Status = "CANCELLING"      // compensations in progress
	StatusCompleted      Status = "COMPLETED"
	StatusCancelled      Status = "CANCELLED"
	StatusRejected       Status = "REJECTED"
)

// IsTerminal reports whether s is COMPLETED, CANCELLED or REJECTED.
func (s Status) IsTerminal() bool {
	return s == StatusCompleted || s == StatusCancelled || s == StatusRejected
}

// Step names one step of the saga.
type Step string

const (
	StepStock    Step = "stock"
	StepPayment  Step = "payment"
	StepShipment Step = "shipment"
)

// phase is where one step stands.
type phase uint8

const (
	phaseIdle      phase = iota // never requested
	phaseRequested              // forward command sent, no reply yet
	phaseDone                   // effect confirmed
	phaseFailed                 // refused: no effect
	phaseUndoing                // compensation sent, not confirmed
	phaseUndone                 // compensation confirmed
)

type step struct {
	phase phase
	// effectSeen records that a reply confirmed the effect (reserved, charged,
	// scheduled). A second such reply is a duplicate; one arriving while the
	// step is not in flight reveals an effect to undo.
	effectSeen bool
}

// settled: nothing is pending on this step and nothing of it is left to undo.
func (s step) settled() bool {
	return s.phase == phaseIdle || s.phase == phaseFailed || s.phase == phaseUndone
}

// Order is the event-sourced order aggregate and the state of its saga. Its
// fields change only by applying events: PlaceOrder and the decision methods
// record new ones, Rehydrate replays stored ones. An Order is not safe for
// concurrent use; the store serialises writers with optimistic concurrency on
// Version.
type Order struct {
	id              string
	customerID      string
	items           []Item
	currency        string
	totalCents      int64
	shippingAddress Address
	timeouts        Timeouts
	placedAt        time.Time

	stock, payment, shipment step
	cancelling               bool   // no longer moving forward
	outcome                  Status // "" until terminal
	reason                   string // why it is cancelling, cancelled or rejected
	deadline                 time.Time
	// compensationRetries counts the CompensationRequested events that
	// only resent unconfirmed compensations because a deadline passed (a
	// StepTimedOut just before): it spaces the next resend
	// (compensationRetryInterval). A compensation sent for a late reply is
	// not a resend. afterTimeout says the last event applied was a
	// StepTimedOut.
	compensationRetries int
	afterTimeout        bool

	paymentID      string
	chargedCents   int64
	extraCharges   []string
	shipmentID     string
	carrier        string
	trackingNumber string

	version int
	pending []Event
}

// PlaceOrder validates an order and returns it with its first event,
// OrderPlaced, pending, and the ReserveStock command to send. Zero timeouts
// take DefaultTimeouts. The error is a *ValidationError (ErrInvalidOrder) when
// the order breaks an invariant: an id and customer id, at least one item,
// SKUs present and distinct, quantities positive, prices not negative, a
// positive total that fits in int64 cents, a currency code, a full address.
func PlaceOrder(p NewOrder, timeouts Timeouts, now time.Time) (*Order, Decision, error) {
	if err := timeouts.Validate(); err != nil {
		return nil, Decision{}, err
	}
	timeouts.setDefaults()
	total, err := validateNewOrder(p)
	if err != nil {
		return nil, Decision{}, err
	}
	o := &Order{}
	var d Decision
	o.record(&d, OrderPlaced{
		OrderID:         p.ID,
		CustomerID:      p.CustomerID,
		Items:           slices.Clone(p.Items),
		Currency:        p.Currency,
		TotalCents:      total,
		ShippingAddress: p.ShippingAddress,
		Timeouts:        timeouts,
		PlacedAt:        now,
		StockDeadline:   now.Add(timeouts.Stock),
	})
	d.Commands = append(d.Commands, Command{Kind: ReserveStock, OrderID: o.id, Items: o.Items()})
	return o, d, nil
}

func validateNewOrder(p NewOrder) (total int64, err error) {
	var v ValidationError
	add := func(field, format string, args ...any) {
		v.Fields = append(v.Fields, FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	required := func(field, value string) {
		if strings.TrimSpace(value) == "" {
			add(field, "is required")
		}
	}
	required("id", p.ID)
	required("customer_id", p.CustomerID)
	if len(p.Items) == 0 {
		add("items", "must hold at least one item")
	}
	seen := make(map[string]bool, len(p.Items))
	overflow := false
	for i, it := range p.Items {
		at := fmt.Sprintf("items[%d]", i)
		required(at+".sku", it.SKU)
		if seen[it.SKU] && it.SKU != "" {
			add(at+".sku", "repeats %q", it.SKU)
		}
		seen[it.SKU] = true
		if it.Quantity <= 0 {
			add(at+".quantity", "must be positive, got %d", it.Quantity)
		}
		if it.UnitPriceCents < 0 {
			add(at+".unit_price_cents", "must not be negative, got %d", it.UnitPriceCents)
		}
		if it.Quantity > 0 && it.UnitPriceCents > 0 {
			if it.UnitPriceCents > (math.MaxInt64-total)/int64(it.Quantity) {
				overflow = true
			} else {
				total += it.UnitPriceCents * int64(it.Quantity)
			}
		}
	}
	switch {
	case overflow:
		add("items", "total is too large")
	case len(p.Items) > 0 && total <= 0:
		add("items", "total must be positive")
	}
	if !upperASCII(p.Currency, 3) {
		add("currency", "must be an ISO 4217 code such as EUR, got %q", p.Currency)
	}
	a := p.ShippingAddress
	required("shipping_address.name", a.Name)
	required("shipping_address.line1", a.Line1)
	required("shipping_address.city", a.City)
	if !upperASCII(a.Country, 2) {
		add("shipping_address.country", "must be an ISO 3166-1 alpha-2 code such as FR, got %q", a.Country)
	}
	if len(v.Fields) > 0 {
		return 0, &v
	}
	return total, nil
}

func upperASCII(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// Rehydrate rebuilds an order from its stored stream, oldest first, without
// deciding anything: no command is produced and nothing is pending. Version
// is len(events). The stream must start with OrderPlaced and hold no other
// OrderPlaced; otherwise the error wraps ErrInvalidHistory.
func Rehydrate(events []Event) (*Order, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: no events", ErrInvalidHistory)
	}
	if _, ok := events[0].(OrderPlaced); !ok {
		return nil, fmt.Errorf("%w: first event is %T, want OrderPlaced", ErrInvalidHistory, events[0])
	}
	o := &Order{}
	for i, e := range events {
		if _, ok := e.(OrderPlaced); ok && i > 0 {
			return nil, fmt.Errorf("%w: OrderPlaced again at version %d", ErrInvalidHistory, i+1)
		}
		if err := o.apply(e); err != nil {
			return nil, fmt.Errorf("%w: version %d: %v", ErrInvalidHistory, i+1, err)
		}
	}
	o.version = len(events)
	return o, nil
}

// record applies a new event and queues it for the store and the decision.
func (o *Order) record(d *Decision, e Event) {
	if err := o.apply(e); err != nil {
		panic(err) // only events of this package are recorded
	}
	o.pending = append(o.pending, e)
	d.Events = append(d.Events, e)
}

// apply folds one event into the state. It never decides: the decision
// methods do, and record what they decided as events.
func (o *Order) apply(e Event) error {
	afterTimeout := o.afterTimeout
	o.afterTimeout = false
	switch e := e.(type) {
	case OrderPlaced:
		o.id, o.customerID = e.OrderID, e.CustomerID
		o.items = slices.Clone(e.Items)
		o.currency, o.totalCents = e.Currency, e.TotalCents
		o.shippingAddress, o.timeouts, o.placedAt = e.ShippingAddress, e.Timeouts, e.PlacedAt
		o.stock.phase = phaseRequested
		o.deadline = e.StockDeadline
	case StockReserved:
		o.stock.confirmEffect()
	case StockReservationFailed:
		o.stock.fail()
	case PaymentRequested:
		o.payment.phase = phaseRequested
		o.deadline = e.Deadline
	case PaymentCharged:
		o.payment.confirmEffect()
		o.paymentID, o.chargedCents = e.PaymentID, e.AmountCents
	case PaymentDeclined:
		o.payment.fail()
	case ShipmentRequested:
		o.shipment.phase = phaseRequested
		o.deadline = e.Deadline
	case ShipmentScheduled:
		o.shipment.confirmEffect()
		o.shipmentID, o.carrier, o.trackingNumber = e.ShipmentID, e.Carrier, e.TrackingNumber
	case ShipmentFailed:
		o.shipment.fail()
	case CancellationRequested:
		o.startCancelling(e.Reason)
	case StepTimedOut:
		// A record only; the CompensationRequested that follows acts.
		o.afterTimeout = true
	case CompensationRequested:
		if o.isResend(afterTimeout, e.Steps) {
			o.compensationRetries++
		}
		for _, s := range e.Steps {
			st := o.step(s)
			if st == nil {
				return fmt.Errorf("unknown step %q", s)
			}
			st.phase = phaseUndoing
		}
		o.startCancelling(e.Reason)
		o.deadline = e.Deadline
	case StockReleased:
		o.stock.confirmUndo()
		if e.Released {
			o.stock.effectSeen = true
		}
	case PaymentRefunded:
		o.payment.confirmUndo()
		if o.paymentID == "" && e.PaymentID != "" {
			// A blind refund found a charge: the charge's own reply, if it
			// comes later, is then a duplicate.
			o.payment.effectSeen = true
			o.paymentID, o.chargedCents = e.PaymentID, e.AmountCents
		}
	case ShipmentCancelled:
		o.shipment.confirmUndo()
		if o.shipmentID == "" && e.ShipmentID != "" {
			o.shipment.effectSeen = true
			o.shipmentID = e.ShipmentID
		}
	case ExtraChargeDetected:
		o.extraCharges = append(o.extraCharges, e.PaymentID)
	case OrderCompleted:
		o.outcome = StatusCompleted
	case OrderCancelled:
		o.outcome, o.reason = StatusCancelled, e.Reason
	case OrderRejected:
		o.outcome, o.reason = StatusRejected, e.Reason
	default:
		return fmt.Errorf("unknown event %T", e)
	}
	if len(o.outstanding()) == 0 {
		o.deadline = time.Time{}
	}
	return nil
}

func (s *step) confirmEffect() {
	s.effectSeen = true
	if s.phase == phaseRequested {
		s.phase = phaseDone
	}
}

func (s *step) fail() {
	if s.phase == phaseRequested {
		s.phase = phaseFailed
	}
}

func (s *step) confirmUndo() {
	if s.phase == phaseUndoing {
		s.phase = phaseUndone
	}
}

// startCancelling stops the forward saga, keeping the first reason given. A
// terminal order stays as it is.
func (o *Order) startCancelling(reason string) {
	if o.outcome != "" {
		return
	}
	o.cancelling = true
	if o.reason == "" {
		o.reason = reason
	}
}

func (o *Order) step(s Step) *step {
	switch s {
	case StepStock:
		return &o.stock
	case StepPayment:
		return &o.payment
	case StepShipment:
		return &o.shipment
	}
	return nil
}

// stepsIn returns the steps whose phase is one of phases, last step first:
// compensations undo the latest step first.
func (o *Order) stepsIn(phases ...phase) []Step {
	var out []Step
	for _, s := range [...]Step{StepShipment, StepPayment, StepStock} {
		if slices.Contains(phases, o.step(s).phase) {
			out = append(out, s)
		}
	}
	return out
}

// outstanding lists the steps awaiting a reply: a forward command in flight or
// an unconfirmed compensation.
func (o *Order) outstanding() []Step { return o.stepsIn(phaseRequested, phaseUndoing) }

// ID returns the order id.
func (o *Order) ID() string { return o.id }

// CustomerID returns the customer the order is for.
func (o *Order) CustomerID() string { return o.customerID }

// Items returns a copy of the order lines.
func (o *Order) Items() []Item { return slices.Clone(o.items) }

// Currency returns the ISO 4217 code of every amount of the order.
func (o *Order) Currency() string { return o.currency }

// TotalCents returns the amount to charge: the sum of quantity × unit price.
func (o *Order) TotalCents() int64 { return o.totalCents }

// ShippingAddress returns where the order ships.
func (o *Order) ShippingAddress() Address { return o.shippingAddress }

// PlacedAt returns when the order was placed.
func (o *Order) PlacedAt() time.Time { return o.placedAt }

// Status returns where the order stands.
func (o *Order) Status() Status {
	switch {
	case o.outcome != "":
		return o.outcome
	case o.cancelling:
		return StatusCancelling
	case o.shipment.phase == phaseRequested:
		return StatusPaymentCharged
	case o.payment.phase == phaseRequested:
		return StatusStockReserved
	}
	return StatusPending
}

// Reason returns why the order is cancelling, cancelled or rejected, or "".
func (o *Order) Reason() string { return o.reason }

// Deadline returns when Timeout will act, or the zero time when nothing is
// awaited. It survives restarts: it is part of the stream.
func (o *Order) Deadline() time.Time { return o.deadline }

// Awaiting lists the steps awaiting a reply, last step first: the forward
// step in flight, or the compensations not yet confirmed. It is empty for a
// terminal order whose compensations are all confirmed.
func (o *Order) Awaiting() []Step { return o.outstanding() }

// PaymentID returns the id of the order's charge, or "" if none is known.
func (o *Order) PaymentID() string { return o.paymentID }

// ShipmentID returns the id of the order's shipment, or "" if none is known.
func (o *Order) ShipmentID() string { return o.shipmentID }

// TrackingNumber returns the shipment's tracking number, or "".
func (o *Order) TrackingNumber() string { return o.trackingNumber }

// Carrier returns the shipment's carrier, or "".
func (o *Order) Carrier() string { return o.carrier }

// Version returns the number of events of the stream as last loaded or saved:
// the expected version for appending PendingEvents. It does not count pending
// events; ClearPending does.
func (o *Order) Version() int { return o.version }

// PendingEvents returns the events recorded since the order was placed,
// rehydrated or last cleared, oldest first, to append at versions
// Version()+1, Version()+2, …
func (o *Order) PendingEvents() []Event { return slices.Clone(o.pending) }

// ClearPending tells the order its pending events are stored: Version grows by
// their number and PendingEvents becomes empty.
func (o *Order) ClearPending() {
	o.version += len(o.pending)
	o.pending = nil
}
