package domain

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The saga, orchestrated by the order itself. Each method below takes one
// input (a service reply, the customer's cancel, a timer tick), records the
// events it decides on and returns them with the commands to send:
//
//	PENDING ──StockReserved──▶ STOCK_RESERVED ──PaymentCharged──▶ PAYMENT_CHARGED ──ShipmentScheduled──▶ COMPLETED
//	   │ StockReservationFailed     │ PaymentDeclined                  │ ShipmentFailed
//	   ▼                            ▼                                  ▼
//	REJECTED              CANCELLING: release stock          CANCELLING: refund + release
//
// CANCELLING ends in CANCELLED once every step is settled: never requested,
// refused, or compensated and the compensation confirmed. The customer's cancel
// and a passed deadline lead there too, compensating exactly what was done; a
// step still in flight is compensated when its reply reveals an effect, or
// blindly when its deadline passes (the services' compensations are
// idempotent and always answered).
//
// Replies are at-least-once and unordered, so every method is idempotent: a
// reply for a step not in flight changes nothing, unless it reveals an effect
// the order no longer wants (a charge after a timeout cancelled the order);
// then the decision compensates it, even in a terminal state. Terminal
// statuses never change.

// OnStockReserved handles inventory's StockReserved: the order moves on to
// payment, sending ChargePayment (at most once per order), or, if it is no
// longer moving forward, releases the stock.
func (o *Order) OnStockReserved(now time.Time) (Decision, error) {
	var d Decision
	switch {
	case o.stock.effectSeen:
		// Duplicate.
	case o.stock.phase == phaseRequested && o.movingForward() && o.payment.phase == phaseIdle:
		o.record(&d, StockReserved{})
		o.record(&d, PaymentRequested{AmountCents: o.totalCents, Deadline: now.Add(o.timeouts.Payment)})
		d.Commands = append(d.Commands, Command{
			Kind: ChargePayment, OrderID: o.id, CustomerID: o.customerID,
			AmountCents: o.totalCents, Currency: o.currency,
		})
	default:
		o.record(&d, StockReserved{})
		o.compensate(&d, []Step{StepStock}, "stock reserved after the order stopped", now)
	}
	return d, nil
}

// OnStockReservationFailed handles inventory's StockReservationFailed: the
// order is REJECTED, or CANCELLED if the customer had already cancelled it.
// Ignored unless the stock step is in flight.
func (o *Order) OnStockReservationFailed(reason string, now time.Time) (Decision, error) {
	var d Decision
	if o.stock.phase != phaseRequested {
		return d, nil
	}
	reason = orDefault(reason, "stock unavailable")
	o.record(&d, StockReservationFailed{Reason: reason})
	if o.movingForward() {
		o.record(&d, OrderRejected{Reason: reason, At: now})
		return d, nil
	}
	o.settle(&d, now)
	return d, nil
}

// OnPaymentCharged handles payment's PaymentCharged: the order moves on to
// shipping, or, if it is no longer moving forward, refunds the charge. A
// second charge with a different payment id is refunded on its own.
func (o *Order) OnPaymentCharged(paymentID string, amountCents int64, now time.Time) (Decision, error) {
	var d Decision
	if strings.TrimSpace(paymentID) == "" || amountCents <= 0 {
		return d, fmt.Errorf("%w: payment charged with id %q and amount %d", ErrInvalidReply, paymentID, amountCents)
	}
	switch {
	case o.payment.effectSeen:
		if paymentID == o.paymentID || slices.Contains(o.extraCharges, paymentID) {
			break // duplicate
		}
		o.record(&d, ExtraChargeDetected{PaymentID: paymentID, AmountCents: amountCents})
		d.Commands = append(d.Commands, Command{
			Kind: RefundPayment, OrderID: o.id, PaymentID: paymentID,
			AmountCents: amountCents, Currency: o.currency, Reason: "duplicate charge",
		})
	case o.payment.phase == phaseRequested && o.movingForward() && amountCents != o.totalCents:
		// Payment charged what the order did not ask for (a peer's bug,
		// or a contract both sides read differently): the order is not
		// shipped for it. The charge is recorded, as money moved, and
		// refunded by what was charged; the stock is released.
		o.record(&d, PaymentCharged{PaymentID: paymentID, AmountCents: amountCents})
		o.compensate(&d, o.stepsIn(phaseDone),
			fmt.Sprintf("payment charged %d cents, the order's total is %d", amountCents, o.totalCents), now)
	case o.payment.phase == phaseRequested && o.movingForward():
		o.record(&d, PaymentCharged{PaymentID: paymentID, AmountCents: amountCents})
		o.record(&d, ShipmentRequested{Deadline: now.Add(o.timeouts.Shipment)})
		d.Commands = append(d.Commands, Command{
			Kind: ScheduleShipment, OrderID: o.id, Items: o.Items(), Address: o.shippingAddress,
		})
	default:
		o.record(&d, PaymentCharged{PaymentID: paymentID, AmountCents: amountCents})
		o.compensate(&d, []Step{StepPayment}, "payment charged after the order stopped", now)
	}
	return d, nil
}

// OnPaymentDeclined handles payment's PaymentDeclined: the reserved stock is
// released and the order cancelled once inventory confirms. Ignored unless
// the payment step is in flight.
func (o *Order) OnPaymentDeclined(reason string, now time.Time) (Decision, error) {
	var d Decision
	if o.payment.phase != phaseRequested {
		return d, nil
	}
	reason = orDefault(reason, "declined")
	o.record(&d, PaymentDeclined{Reason: reason})
	if o.movingForward() {
		o.compensate(&d, o.stepsIn(phaseDone), "payment declined: "+reason, now)
	}
	o.settle(&d, now)
	return d, nil
}

// OnShipmentScheduled handles shipping's ShipmentScheduled: the order is
// COMPLETED, or, if it is no longer moving forward, the shipment is cancelled.
func (o *Order) OnShipmentScheduled(shipmentID, carrier, trackingNumber string, now time.Time) (Decision, error) {
	var d Decision
	if strings.TrimSpace(shipmentID) == "" || strings.TrimSpace(trackingNumber) == "" {
		return d, fmt.Errorf("%w: shipment scheduled with id %q and tracking number %q", ErrInvalidReply, shipmentID, trackingNumber)
	}
	e := ShipmentScheduled{ShipmentID: shipmentID, Carrier: carrier, TrackingNumber: trackingNumber}
	switch {
	case o.shipment.effectSeen:
		// Duplicate.
	case o.shipment.phase == phaseRequested && o.movingForward():
		o.record(&d, e)
		o.record(&d, OrderCompleted{At: now})
	default:
		o.record(&d, e)
		o.compensate(&d, []Step{StepShipment}, "shipment scheduled after the order stopped", now)
	}
	return d, nil
}

// OnShipmentFailed handles shipping's ShipmentFailed: the payment is refunded
// and the stock released, and the order cancelled once both are confirmed.
// Ignored unless the shipment step is in flight.
func (o *Order) OnShipmentFailed(reason string, now time.Time) (Decision, error) {
	var d Decision
	if o.shipment.phase != phaseRequested {
		return d, nil
	}
	reason = orDefault(reason, "failed")
	o.record(&d, ShipmentFailed{Reason: reason})
	if o.movingForward() {
		o.compensate(&d, o.stepsIn(phaseDone), "shipment failed: "+reason, now)
	}
	o.settle(&d, now)
	return d, nil
}

// OnStockReleased handles inventory's StockReleased: it confirms the stock
// compensation. released says the release freed a reservation (the reply
// listed items). Ignored unless a compensation is in flight.
func (o *Order) OnStockReleased(released bool, now time.Time) (Decision, error) {
	var d Decision
	if o.stock.phase != phaseUndoing {
		return d, nil
	}
	o.record(&d, StockReleased{Released: released})
	o.settle(&d, now)
	return d, nil
}

// OnPaymentRefunded handles payment's PaymentRefunded: it confirms the
// payment compensation. Ignored unless one is in flight, and when the order
// knows its charge, unless paymentID names it (a refund of nothing, or of an
// extra charge, does not undo the order's charge).
func (o *Order) OnPaymentRefunded(paymentID string, amountCents int64, now time.Time) (Decision, error) {
	var d Decision
	if o.payment.phase != phaseUndoing || (o.paymentID != "" && paymentID != o.paymentID) {
		return d, nil
	}
	o.record(&d, PaymentRefunded{PaymentID: paymentID, AmountCents: amountCents})
	o.settle(&d, now)
	return d, nil
}

// OnShipmentCancelled handles shipping's ShipmentCancelled: it confirms the
// shipment compensation. Ignored unless one is in flight, and when the order
// knows its shipment, unless shipmentID names it.
func (o *Order) OnShipmentCancelled(shipmentID string, now time.Time) (Decision, error) {
	var d Decision
	if o.shipment.phase != phaseUndoing || (o.shipmentID != "" && shipmentID != o.shipmentID) {
		return d, nil
	}
	o.record(&d, ShipmentCancelled{ShipmentID: shipmentID})
	o.settle(&d, now)
	return d, nil
}

// Cancel is the customer's cancellation. It is accepted until the shipment is
// scheduled: the steps already done are compensated at once, the step in
// flight when its reply arrives (or at its deadline), and the order ends
// CANCELLED. Cancelling a cancelling or cancelled order changes nothing and
// is not an error; a COMPLETED or REJECTED order returns ErrNotCancellable.
func (o *Order) Cancel(reason string, now time.Time) (Decision, error) {
	var d Decision
	switch st := o.Status(); st {
	case StatusCancelling, StatusCancelled:
		return d, nil
	case StatusCompleted, StatusRejected:
		return d, fmt.Errorf("%w: order %s is %s", ErrNotCancellable, o.id, st)
	}
	reason = orDefault(reason, "cancelled by customer")
	o.record(&d, CancellationRequested{Reason: reason})
	o.compensate(&d, o.stepsIn(phaseDone), reason, now)
	o.settle(&d, now)
	return d, nil
}

// Timeout fires the deadline if now is at or past it: every step still
// awaiting a reply is compensated, blindly for a forward step in flight (it
// may have taken effect) and again for an unconfirmed compensation (a retry,
// the next one after an exponential backoff: compensationRetryInterval).
// A forward saga also compensates its completed steps and starts cancelling.
// Before the deadline, or with nothing awaited, it changes nothing; calling it
// late or twice is harmless.
func (o *Order) Timeout(now time.Time) (Decision, error) {
	var d Decision
	outstanding := o.outstanding()
	if o.deadline.IsZero() || now.Before(o.deadline) || len(outstanding) == 0 {
		return d, nil
	}
	o.record(&d, StepTimedOut{Steps: outstanding, Deadline: o.deadline})
	if o.movingForward() {
		// Exactly one forward step is in flight; the earlier ones are done.
		reason := fmt.Sprintf("timed out waiting for %s", outstanding[0])
		o.compensate(&d, o.stepsIn(phaseRequested, phaseDone), reason, now)
		return d, nil
	}
	o.compensate(&d, outstanding, orDefault(o.reason, "compensation retried"), now)
	return d, nil
}

// movingForward: not terminal and not cancelling.
func (o *Order) movingForward() bool { return o.outcome == "" && !o.cancelling }

// compensate records CompensationRequested for steps and adds their undo
// commands, last step first. The reason counts only for a forward order;
// a cancelling one keeps its first reason. A first compensation waits
// Timeouts.Compensation for its confirmation; a resend of unconfirmed ones
// waits longer each time (compensationRetryInterval).
func (o *Order) compensate(d *Decision, steps []Step, reason string, now time.Time) {
	if len(steps) == 0 {
		return
	}
	wait := o.timeouts.Compensation
	if o.isResend(o.afterTimeout, steps) {
		wait = compensationRetryInterval(o.timeouts.Compensation, o.compensationRetries+1)
	}
	o.record(d, CompensationRequested{Steps: steps, Reason: reason, Deadline: now.Add(wait)})
	reason = orDefault(o.reason, reason)
	for _, s := range steps {
		c := Command{OrderID: o.id, Reason: reason}
		switch s {
		case StepStock:
			c.Kind, c.Items = ReleaseStock, o.Items()
		case StepPayment:
			c.Kind, c.PaymentID, c.Currency = RefundPayment, o.paymentID, o.currency
			c.AmountCents = o.chargedCents
			if c.AmountCents == 0 {
				c.AmountCents = o.totalCents // the charge is not known: at most the total
			}
		case StepShipment:
			c.Kind, c.ShipmentID = CancelShipment, o.shipmentID
		}
		d.Commands = append(d.Commands, c)
	}
}

// MaxCompensationRetryInterval caps the wait between two resends of an
// unconfirmed compensation (unless Timeouts.Compensation is longer): a
// service that stays down is still asked every 10 minutes, but the order's
// stream no longer grows by a resend every compensation timeout.
const MaxCompensationRetryInterval = 10 * time.Minute

// compensationRetryInterval is how long the retry-th resend of unconfirmed
// compensations (1 for the first) waits for their confirmation: base
// doubled per retry, capped at MaxCompensationRetryInterval or base if
// longer.
func compensationRetryInterval(base time.Duration, retry int) time.Duration {
	limit := max(base, MaxCompensationRetryInterval)
	d := base
	for i := 0; i < retry && d > 0 && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// isResend reports whether compensating steps now is a resend of
// unconfirmed compensations: right after a StepTimedOut (afterTimeout), of
// steps all being compensated already. The same rule counts resends when
// the stream is replayed (apply) and spaces them when they are decided
// (compensate), so a rehydrated order waits as the live one would.
func (o *Order) isResend(afterTimeout bool, steps []Step) bool {
	return afterTimeout && o.onlyUndoing(steps)
}

// onlyUndoing reports whether steps are all being compensated already.
func (o *Order) onlyUndoing(steps []Step) bool {
	for _, s := range steps {
		if st := o.step(s); st == nil || st.phase != phaseUndoing {
			return false
		}
	}
	return len(steps) > 0
}

// settle records OrderCancelled when a cancelling order has every step settled.
func (o *Order) settle(d *Decision, now time.Time) {
	if o.outcome != "" || !o.cancelling {
		return
	}
	if o.stock.settled() && o.payment.settled() && o.shipment.settled() {
		o.record(d, OrderCancelled{Reason: o.reason, At: now})
	}
}

// orDefault returns s without surrounding blanks, or def if nothing is left.
func orDefault(s, def string) string {
	if s = strings.TrimSpace(s); s == "" {
		return def
	}
	return s
}
