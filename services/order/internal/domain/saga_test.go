package domain

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

// input is one thing that happens to an order: a reply, a cancel, a tick.
type input struct {
	name string
	do   func(o *Order, now time.Time) (Decision, error)
}

var (
	stockReserved = input{"StockReserved", func(o *Order, now time.Time) (Decision, error) { return o.OnStockReserved(now) }}
	stockFailed   = input{"StockReservationFailed", func(o *Order, now time.Time) (Decision, error) {
		return o.OnStockReservationFailed("out of stock", now)
	}}
	charged  = chargedAs("p-1")
	declined = input{"PaymentDeclined", func(o *Order, now time.Time) (Decision, error) {
		return o.OnPaymentDeclined("insufficient funds", now)
	}}
	scheduled = input{"ShipmentScheduled", func(o *Order, now time.Time) (Decision, error) {
		return o.OnShipmentScheduled("s-1", "DHL", "TRK-1", now)
	}}
	shipFailed = input{"ShipmentFailed", func(o *Order, now time.Time) (Decision, error) {
		return o.OnShipmentFailed("address unreachable", now)
	}}
	released     = releasedAs(true)
	releasedNone = releasedAs(false) // a blind release that found no reservation
	refunded     = refundedAs("p-1", 4999)
	refundedNone = refundedAs("", 0) // a blind refund that found no charge
	shipCancel   = shipCancelledAs("s-1")
	shipNone     = shipCancelledAs("") // a blind cancel that found no shipment
	cancel       = input{"Cancel", func(o *Order, now time.Time) (Decision, error) { return o.Cancel("changed my mind", now) }}
	tick         = input{"Timeout", func(o *Order, now time.Time) (Decision, error) { return o.Timeout(now) }}
)

func chargedAs(id string) input {
	return input{"PaymentCharged(" + id + ")", func(o *Order, now time.Time) (Decision, error) {
		return o.OnPaymentCharged(id, 4999, now)
	}}
}

func releasedAs(freed bool) input {
	return input{fmt.Sprintf("StockReleased(freed %v)", freed), func(o *Order, now time.Time) (Decision, error) {
		return o.OnStockReleased(freed, now)
	}}
}

func refundedAs(id string, cents int64) input {
	return input{fmt.Sprintf("PaymentRefunded(%q)", id), func(o *Order, now time.Time) (Decision, error) {
		return o.OnPaymentRefunded(id, cents, now)
	}}
}

func shipCancelledAs(id string) input {
	return input{fmt.Sprintf("ShipmentCancelled(%q)", id), func(o *Order, now time.Time) (Decision, error) {
		return o.OnShipmentCancelled(id, now)
	}}
}

// sagaStep is one input at t0+at and what it must decide.
type sagaStep struct {
	in     input
	at     time.Duration
	events []string      // event types recorded, in order
	cmds   []CommandKind // commands sent, in order
	status Status        // status afterwards
}

// Timeline with testTimeouts: placed at 0 s (stock deadline 10 s); a reply at
// 1 s opens payment (deadline 21 s); one at 2 s opens shipment (deadline 32 s);
// compensations wait 5 s.
var (
	evStock     = []string{"StockReserved", "PaymentRequested"}
	evCharged   = []string{"PaymentCharged", "ShipmentRequested"}
	evTimedOut  = []string{"StepTimedOut", "CompensationRequested"}
	toPayment   = sagaStep{stockReserved, 1 * time.Second, evStock, []CommandKind{ChargePayment}, StatusStockReserved}
	toShipment  = sagaStep{charged, 2 * time.Second, evCharged, []CommandKind{ScheduleShipment}, StatusPaymentCharged}
	toCompleted = sagaStep{scheduled, 3 * time.Second, []string{"ShipmentScheduled", "OrderCompleted"}, nil, StatusCompleted}
)

func TestSaga(t *testing.T) {
	tests := []struct {
		name  string
		steps []sagaStep
	}{
		// ---- happy path and the three failures -------------------------------
		{"happy path", []sagaStep{toPayment, toShipment, toCompleted}},
		{"stock reservation failed rejects", []sagaStep{
			{stockFailed, time.Second, []string{"StockReservationFailed", "OrderRejected"}, nil, StatusRejected},
		}},
		{"payment declined releases stock then cancels", []sagaStep{
			toPayment,
			{declined, 2 * time.Second, []string{"PaymentDeclined", "CompensationRequested"}, []CommandKind{ReleaseStock}, StatusCancelling},
			{released, 3 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"shipment failed refunds and releases, cancels once both are confirmed", []sagaStep{
			toPayment, toShipment,
			{shipFailed, 3 * time.Second, []string{"ShipmentFailed", "CompensationRequested"}, []CommandKind{RefundPayment, ReleaseStock}, StatusCancelling},
			{refunded, 4 * time.Second, []string{"PaymentRefunded"}, nil, StatusCancelling},
			{released, 5 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"shipment failed, StockReleased before PaymentRefunded", []sagaStep{
			toPayment, toShipment,
			{shipFailed, 3 * time.Second, []string{"ShipmentFailed", "CompensationRequested"}, []CommandKind{RefundPayment, ReleaseStock}, StatusCancelling},
			{released, 4 * time.Second, []string{"StockReleased"}, nil, StatusCancelling},
			{refunded, 5 * time.Second, []string{"PaymentRefunded", "OrderCancelled"}, nil, StatusCancelled},
		}},

		// ---- customer cancel at each step -------------------------------------
		{"cancel while stock in flight, then stock reserved: release", []sagaStep{
			{cancel, time.Second, []string{"CancellationRequested"}, nil, StatusCancelling},
			{stockReserved, 2 * time.Second, []string{"StockReserved", "CompensationRequested"}, []CommandKind{ReleaseStock}, StatusCancelling},
			{released, 3 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"cancel while stock in flight, then stock failed: nothing to undo", []sagaStep{
			{cancel, time.Second, []string{"CancellationRequested"}, nil, StatusCancelling},
			{stockFailed, 2 * time.Second, []string{"StockReservationFailed", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"cancel while payment in flight, then charged: refund and release", []sagaStep{
			toPayment,
			{cancel, 2 * time.Second, []string{"CancellationRequested", "CompensationRequested"}, []CommandKind{ReleaseStock}, StatusCancelling},
			{charged, 3 * time.Second, []string{"PaymentCharged", "CompensationRequested"}, []CommandKind{RefundPayment}, StatusCancelling},
			{released, 4 * time.Second, []string{"StockReleased"}, nil, StatusCancelling},
			{refunded, 5 * time.Second, []string{"PaymentRefunded", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"cancel while payment in flight, then declined: release only", []sagaStep{
			toPayment,
			{cancel, 2 * time.Second, []string{"CancellationRequested", "CompensationRequested"}, []CommandKind{ReleaseStock}, StatusCancelling},
			{declined, 3 * time.Second, []string{"PaymentDeclined"}, nil, StatusCancelling},
			{released, 4 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"cancel while shipment in flight, then scheduled: cancel shipment, refund, release", []sagaStep{
			toPayment, toShipment,
			{cancel, 3 * time.Second, []string{"CancellationRequested", "CompensationRequested"}, []CommandKind{RefundPayment, ReleaseStock}, StatusCancelling},
			{scheduled, 4 * time.Second, []string{"ShipmentScheduled", "CompensationRequested"}, []CommandKind{CancelShipment}, StatusCancelling},
			{refunded, 5 * time.Second, []string{"PaymentRefunded"}, nil, StatusCancelling},
			{shipCancel, 6 * time.Second, []string{"ShipmentCancelled"}, nil, StatusCancelling},
			{released, 7 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"cancel while shipment in flight, then shipment failed", []sagaStep{
			toPayment, toShipment,
			{cancel, 3 * time.Second, []string{"CancellationRequested", "CompensationRequested"}, []CommandKind{RefundPayment, ReleaseStock}, StatusCancelling},
			{shipFailed, 4 * time.Second, []string{"ShipmentFailed"}, nil, StatusCancelling},
			{released, 5 * time.Second, []string{"StockReleased"}, nil, StatusCancelling},
			{refunded, 6 * time.Second, []string{"PaymentRefunded", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"cancel while compensating changes nothing", []sagaStep{
			toPayment,
			{declined, 2 * time.Second, []string{"PaymentDeclined", "CompensationRequested"}, []CommandKind{ReleaseStock}, StatusCancelling},
			{cancel, 3 * time.Second, nil, nil, StatusCancelling},
			{released, 4 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
			{cancel, 5 * time.Second, nil, nil, StatusCancelled},
		}},

		// ---- timeouts at each step --------------------------------------------
		{"stock timeout releases blindly and cancels", []sagaStep{
			{tick, 9 * time.Second, nil, nil, StatusPending},
			{tick, 10 * time.Second, evTimedOut, []CommandKind{ReleaseStock}, StatusCancelling},
			{released, 11 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"payment timeout refunds blindly, releases and cancels", []sagaStep{
			toPayment,
			{tick, 20 * time.Second, nil, nil, StatusStockReserved},
			{tick, 21 * time.Second, evTimedOut, []CommandKind{RefundPayment, ReleaseStock}, StatusCancelling},
			{refundedNone, 22 * time.Second, []string{"PaymentRefunded"}, nil, StatusCancelling},
			{released, 23 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"shipment timeout cancels shipment blindly, refunds, releases", []sagaStep{
			toPayment, toShipment,
			{tick, 31 * time.Second, nil, nil, StatusPaymentCharged},
			{tick, 32 * time.Second, evTimedOut, []CommandKind{CancelShipment, RefundPayment, ReleaseStock}, StatusCancelling},
			{shipNone, 33 * time.Second, []string{"ShipmentCancelled"}, nil, StatusCancelling},
			{refunded, 34 * time.Second, []string{"PaymentRefunded"}, nil, StatusCancelling},
			{released, 35 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"unconfirmed compensation is retried at its deadline, backing off", []sagaStep{
			toPayment,
			{declined, 2 * time.Second, []string{"PaymentDeclined", "CompensationRequested"}, []CommandKind{ReleaseStock}, StatusCancelling},
			{tick, 6 * time.Second, nil, nil, StatusCancelling},
			{tick, 7 * time.Second, evTimedOut, []CommandKind{ReleaseStock}, StatusCancelling},  // waits 2 × 5 s
			{tick, 16 * time.Second, nil, nil, StatusCancelling},                                // not before 17 s
			{tick, 17 * time.Second, evTimedOut, []CommandKind{ReleaseStock}, StatusCancelling}, // waits 4 × 5 s
			{tick, 36 * time.Second, nil, nil, StatusCancelling},                                // not before 37 s
			{tick, 37 * time.Second, evTimedOut, []CommandKind{ReleaseStock}, StatusCancelling}, // waits 8 × 5 s
			{released, 38 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
			{tick, time.Hour, nil, nil, StatusCancelled},
		}},
		{"timeout after cancel compensates the step still in flight", []sagaStep{
			toPayment,
			{cancel, 2 * time.Second, []string{"CancellationRequested", "CompensationRequested"}, []CommandKind{ReleaseStock}, StatusCancelling},
			{released, 3 * time.Second, []string{"StockReleased"}, nil, StatusCancelling},
			{tick, 7 * time.Second, evTimedOut, []CommandKind{RefundPayment}, StatusCancelling},
			{refundedNone, 8 * time.Second, []string{"PaymentRefunded", "OrderCancelled"}, nil, StatusCancelled},
		}},

		// ---- late and reordered replies ----------------------------------------
		{"charge after the payment timeout cancelled the order is refunded", []sagaStep{
			toPayment,
			{tick, 21 * time.Second, evTimedOut, []CommandKind{RefundPayment, ReleaseStock}, StatusCancelling},
			{refundedNone, 22 * time.Second, []string{"PaymentRefunded"}, nil, StatusCancelling},
			{released, 23 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
			{charged, 24 * time.Second, []string{"PaymentCharged", "CompensationRequested"}, []CommandKind{RefundPayment}, StatusCancelled},
			{refunded, 25 * time.Second, []string{"PaymentRefunded"}, nil, StatusCancelled},
			{tick, time.Hour, nil, nil, StatusCancelled},
		}},
		{"charge arriving while the blind refund is in flight waits for its own refund", []sagaStep{
			toPayment,
			{tick, 21 * time.Second, evTimedOut, []CommandKind{RefundPayment, ReleaseStock}, StatusCancelling},
			{charged, 22 * time.Second, []string{"PaymentCharged", "CompensationRequested"}, []CommandKind{RefundPayment}, StatusCancelling},
			{released, 23 * time.Second, []string{"StockReleased"}, nil, StatusCancelling},
			{refundedNone, 24 * time.Second, nil, nil, StatusCancelling},
			{refunded, 25 * time.Second, []string{"PaymentRefunded", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"blind refund that found the charge makes the late charge a duplicate", []sagaStep{
			toPayment,
			{tick, 21 * time.Second, evTimedOut, []CommandKind{RefundPayment, ReleaseStock}, StatusCancelling},
			{refunded, 22 * time.Second, []string{"PaymentRefunded"}, nil, StatusCancelling},
			{charged, 23 * time.Second, nil, nil, StatusCancelling},
			{released, 24 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"late reservation after the stock timeout is released again", []sagaStep{
			{tick, 10 * time.Second, evTimedOut, []CommandKind{ReleaseStock}, StatusCancelling},
			{releasedNone, 11 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
			{stockReserved, 12 * time.Second, []string{"StockReserved", "CompensationRequested"}, []CommandKind{ReleaseStock}, StatusCancelled},
			{tick, 17 * time.Second, evTimedOut, []CommandKind{ReleaseStock}, StatusCancelled},
			{released, 18 * time.Second, []string{"StockReleased"}, nil, StatusCancelled},
			{tick, time.Hour, nil, nil, StatusCancelled},
		}},
		{"a reservation overtaken by the release that freed it is not released again", []sagaStep{
			{tick, 10 * time.Second, evTimedOut, []CommandKind{ReleaseStock}, StatusCancelling},
			{released, 11 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
			{stockReserved, 12 * time.Second, nil, nil, StatusCancelled},
			{tick, time.Hour, nil, nil, StatusCancelled},
		}},
		{"a reservation redelivered after its release is a duplicate", []sagaStep{
			toPayment,
			{declined, 2 * time.Second, []string{"PaymentDeclined", "CompensationRequested"}, []CommandKind{ReleaseStock}, StatusCancelling},
			{released, 3 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
			{stockReserved, 4 * time.Second, nil, nil, StatusCancelled},
		}},
		{"late shipment after the shipment timeout is cancelled", []sagaStep{
			toPayment, toShipment,
			{tick, 32 * time.Second, evTimedOut, []CommandKind{CancelShipment, RefundPayment, ReleaseStock}, StatusCancelling},
			{scheduled, 33 * time.Second, []string{"ShipmentScheduled", "CompensationRequested"}, []CommandKind{CancelShipment}, StatusCancelling},
			{shipNone, 34 * time.Second, nil, nil, StatusCancelling}, // the blind cancel found nothing
			{shipCancel, 35 * time.Second, []string{"ShipmentCancelled"}, nil, StatusCancelling},
			{refunded, 36 * time.Second, []string{"PaymentRefunded"}, nil, StatusCancelling},
			{released, 37 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"late refusals after a timeout are ignored", []sagaStep{
			toPayment,
			{tick, 21 * time.Second, evTimedOut, []CommandKind{RefundPayment, ReleaseStock}, StatusCancelling},
			{declined, 22 * time.Second, nil, nil, StatusCancelling},
			{stockFailed, 23 * time.Second, nil, nil, StatusCancelling},
			{refundedNone, 24 * time.Second, []string{"PaymentRefunded"}, nil, StatusCancelling},
			{released, 25 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"replies after COMPLETED change nothing", []sagaStep{
			toPayment, toShipment, toCompleted,
			{stockFailed, 4 * time.Second, nil, nil, StatusCompleted},
			{declined, 5 * time.Second, nil, nil, StatusCompleted},
			{shipFailed, 6 * time.Second, nil, nil, StatusCompleted},
			{released, 7 * time.Second, nil, nil, StatusCompleted},
			{refunded, 8 * time.Second, nil, nil, StatusCompleted},
			{shipCancel, 9 * time.Second, nil, nil, StatusCompleted},
			{stockReserved, 10 * time.Second, nil, nil, StatusCompleted},
			{tick, time.Hour, nil, nil, StatusCompleted},
		}},
		{"replies after REJECTED change nothing", []sagaStep{
			{stockFailed, time.Second, []string{"StockReservationFailed", "OrderRejected"}, nil, StatusRejected},
			{released, 2 * time.Second, nil, nil, StatusRejected},
			{declined, 3 * time.Second, nil, nil, StatusRejected},
			{tick, time.Hour, nil, nil, StatusRejected},
		}},
		{"a reservation contradicting the rejection is released, status kept", []sagaStep{
			{stockFailed, time.Second, []string{"StockReservationFailed", "OrderRejected"}, nil, StatusRejected},
			{stockReserved, 2 * time.Second, []string{"StockReserved", "CompensationRequested"}, []CommandKind{ReleaseStock}, StatusRejected},
			{released, 3 * time.Second, []string{"StockReleased"}, nil, StatusRejected},
		}},
		{"unsolicited confirmations are ignored", []sagaStep{
			{released, time.Second, nil, nil, StatusPending},
			{refunded, time.Second, nil, nil, StatusPending},
			toPayment,
			{shipCancel, 2 * time.Second, nil, nil, StatusStockReserved},
			{declined, 3 * time.Second, []string{"PaymentDeclined", "CompensationRequested"}, []CommandKind{ReleaseStock}, StatusCancelling},
			{refunded, 4 * time.Second, nil, nil, StatusCancelling},
			{released, 5 * time.Second, []string{"StockReleased", "OrderCancelled"}, nil, StatusCancelled},
		}},
		{"a second, different charge is refunded on its own", []sagaStep{
			toPayment, toShipment,
			{chargedAs("p-2"), 3 * time.Second, []string{"ExtraChargeDetected"}, []CommandKind{RefundPayment}, StatusPaymentCharged},
			{refundedAs("p-2", 4999), 4 * time.Second, nil, nil, StatusPaymentCharged},
			toCompleted,
		}},
		{"refund of another charge does not confirm the order's refund", []sagaStep{
			toPayment, toShipment,
			{shipFailed, 3 * time.Second, []string{"ShipmentFailed", "CompensationRequested"}, []CommandKind{RefundPayment, ReleaseStock}, StatusCancelling},
			{refundedAs("p-9", 4999), 4 * time.Second, nil, nil, StatusCancelling},
			{shipCancelledAs("s-9"), 4 * time.Second, nil, nil, StatusCancelling},
			{released, 5 * time.Second, []string{"StockReleased"}, nil, StatusCancelling},
			{refunded, 6 * time.Second, []string{"PaymentRefunded", "OrderCancelled"}, nil, StatusCancelled},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := place(t)
			stream := o.PendingEvents()
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				d, err := s.in.do(o, now)
				if err != nil {
					t.Fatalf("step %d %s: got error %v, want nil", i, s.in.name, err)
				}
				if got := eventTypes(d.Events); !slices.Equal(got, s.events) {
					t.Errorf("step %d %s: events: got %v, want %v", i, s.in.name, got, s.events)
				}
				if got := commandKinds(d.Commands); !slices.Equal(got, s.cmds) {
					t.Errorf("step %d %s: commands: got %v, want %v", i, s.in.name, got, s.cmds)
				}
				if got := o.Status(); got != s.status {
					t.Errorf("step %d %s: status: got %s, want %s", i, s.in.name, got, s.status)
				}
				stream = append(stream, d.Events...)
				if got := o.PendingEvents(); !reflect.DeepEqual(got, stream) {
					t.Fatalf("step %d %s: PendingEvents: got %v, want the decisions' events %v", i, s.in.name, eventTypes(got), eventTypes(stream))
				}
				// Every input is idempotent: delivered again at once, it
				// decides nothing.
				if again, err := s.in.do(o, now); err != nil || !again.IsEmpty() {
					t.Errorf("step %d %s delivered twice: got (%v, %v), want an empty decision", i, s.in.name, summary(again), err)
				}
				assertSameState(t, o, stream)
			}
		})
	}
}

func TestCompensationRetryInterval(t *testing.T) {
	tests := []struct {
		base  time.Duration
		retry int
		want  time.Duration
	}{
		{5 * time.Second, 0, 5 * time.Second},
		{5 * time.Second, 1, 10 * time.Second},
		{5 * time.Second, 2, 20 * time.Second},
		{5 * time.Second, 6, 320 * time.Second},
		{5 * time.Second, 7, MaxCompensationRetryInterval}, // 640 s, capped
		{5 * time.Second, 1 << 30, MaxCompensationRetryInterval},
		{30 * time.Second, 4, 8 * time.Minute},
		{30 * time.Second, 5, MaxCompensationRetryInterval},
		{time.Hour, 3, time.Hour}, // a base above the cap is the cap
	}
	for _, tc := range tests {
		if got := compensationRetryInterval(tc.base, tc.retry); got != tc.want {
			t.Errorf("compensationRetryInterval(%v, %d): got %v, want %v", tc.base, tc.retry, got, tc.want)
		}
	}
}

// An unconfirmed compensation is resent with the wait doubling from the
// compensation timeout up to the cap, and the count of retries survives
// Rehydrate (it is derived from the stream).
func TestUnconfirmedCompensationBacksOff(t *testing.T) {
	o := place(t)
	now := t0.Add(time.Second)
	for _, in := range []input{stockReserved, declined} {
		if _, err := in.do(o, now); err != nil {
			t.Fatal(err)
		}
	}
	stream := o.PendingEvents()
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 320 * time.Second, 10 * time.Minute, 10 * time.Minute}
	for i, w := range want {
		if got := o.Deadline().Sub(now); got != w {
			t.Errorf("wait after %d retries: got %v, want %v", i, got, w)
		}
		now = o.Deadline()
		// Each retry on an order loaded afresh, as the timeout loop does.
		r, err := Rehydrate(stream)
		if err != nil {
			t.Fatal(err)
		}
		d, err := r.Timeout(now)
		if err != nil || !slices.Equal(commandKinds(d.Commands), []CommandKind{ReleaseStock}) {
			t.Fatalf("retry %d: got %v, %v; want ReleaseStock again", i+1, summary(d), err)
		}
		stream = append(stream, d.Events...)
		o = r
	}
}

// TestALateReplyIsNotAResend: a charge that arrives after its step timed
// out is refunded for real, but that compensation is not a resend of an
// unconfirmed one, so it neither counts toward the backoff nor waits
// longer; the resend that a passing deadline sends next does.
func TestALateReplyIsNotAResend(t *testing.T) {
	o := place(t)
	now := t0.Add(time.Second)
	if _, err := stockReserved.do(o, now); err != nil {
		t.Fatal(err)
	}
	now = o.Deadline()
	if _, err := o.Timeout(now); err != nil { // payment timed out: release, blind refund
		t.Fatal(err)
	}
	base := o.Deadline().Sub(now)
	now = now.Add(time.Second)
	d, err := charged.do(o, now) // the late charge: refunded for real
	if err != nil || count(d.Commands, RefundPayment) != 1 {
		t.Fatalf("late charge: got %v, %v; want a RefundPayment", summary(d), err)
	}
	if got := o.Deadline().Sub(now); got != base {
		t.Errorf("wait after the late reply's compensation: got %v, want %v (not a resend)", got, base)
	}
	r, err := Rehydrate(o.PendingEvents())
	if err != nil {
		t.Fatal(err)
	}
	for _, ord := range []*Order{o, r} {
		now := ord.Deadline()
		if _, err := ord.Timeout(now); err != nil {
			t.Fatal(err)
		}
		if got, want := ord.Deadline().Sub(now), 2*base; got != want {
			t.Errorf("wait after the first resend: got %v, want %v", got, want)
		}
	}
}

func TestDuplicateStockReservedNeverChargesTwice(t *testing.T) {
	o := place(t)
	var charges int
	for i := range 3 {
		d, err := o.OnStockReserved(t0.Add(time.Duration(i) * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		charges += count(d.Commands, ChargePayment)
	}
	if charges != 1 {
		t.Errorf("ChargePayment commands after three StockReserved: got %d, want 1", charges)
	}
}

func TestCancelAfterTerminal(t *testing.T) {
	tests := []struct {
		name  string
		steps []input
		want  error
	}{
		{"completed", []input{stockReserved, charged, scheduled}, ErrNotCancellable},
		{"rejected", []input{stockFailed}, ErrNotCancellable},
		{"cancelled", []input{cancel, stockFailed}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := place(t)
			for _, in := range tc.steps {
				if _, err := in.do(o, t0); err != nil {
					t.Fatal(err)
				}
			}
			before := o.Status()
			d, err := o.Cancel("too late", t0)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("Cancel: got error %v, want %v", err, tc.want)
			}
			if !d.IsEmpty() {
				t.Errorf("Cancel: got decision %v, want an empty one", summary(d))
			}
			if got := o.Status(); got != before {
				t.Errorf("status after Cancel: got %s, want %s", got, before)
			}
		})
	}
}

func TestInvalidReplies(t *testing.T) {
	o := place(t)
	if _, err := o.OnStockReserved(t0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		do   func() (Decision, error)
	}{
		{"charge without id", func() (Decision, error) { return o.OnPaymentCharged("", 4999, t0) }},
		{"charge of nothing", func() (Decision, error) { return o.OnPaymentCharged("p-1", 0, t0) }},
		{"shipment without id", func() (Decision, error) { return o.OnShipmentScheduled("", "DHL", "T", t0) }},
		{"shipment without tracking number", func() (Decision, error) { return o.OnShipmentScheduled("s-1", "DHL", " ", t0) }},
	}
	for _, tc := range tests {
		d, err := tc.do()
		if !errors.Is(err, ErrInvalidReply) || !d.IsEmpty() {
			t.Errorf("%s: got (%v, %v), want (empty, ErrInvalidReply)", tc.name, summary(d), err)
		}
	}
	if got := o.Status(); got != StatusStockReserved {
		t.Errorf("status after invalid replies: got %s, want %s", got, StatusStockReserved)
	}
}

// The commands carry what the services need, and compensations name the
// effect they undo when it is known.
func TestCommandContents(t *testing.T) {
	items := validNewOrder().Items
	addr := validNewOrder().ShippingAddress
	tests := []struct {
		name  string
		steps []input
		last  input
		want  []Command
	}{
		{"charge", nil, stockReserved, []Command{
			{Kind: ChargePayment, OrderID: "o-1", CustomerID: "c-1", AmountCents: 4999, Currency: "EUR"},
		}},
		{"schedule", []input{stockReserved}, charged, []Command{
			{Kind: ScheduleShipment, OrderID: "o-1", Items: items, Address: addr},
		}},
		{"compensations of a known charge and shipment", []input{stockReserved, charged}, cancel, []Command{
			{Kind: RefundPayment, OrderID: "o-1", PaymentID: "p-1", AmountCents: 4999, Currency: "EUR", Reason: "changed my mind"},
			{Kind: ReleaseStock, OrderID: "o-1", Items: items, Reason: "changed my mind"},
		}},
		{"blind compensations after a timeout", []input{stockReserved, charged}, input{"Timeout", func(o *Order, _ time.Time) (Decision, error) {
			return o.Timeout(t0.Add(time.Hour))
		}}, []Command{
			{Kind: CancelShipment, OrderID: "o-1", Reason: "timed out waiting for shipment"},
			{Kind: RefundPayment, OrderID: "o-1", PaymentID: "p-1", AmountCents: 4999, Currency: "EUR", Reason: "timed out waiting for shipment"},
			{Kind: ReleaseStock, OrderID: "o-1", Items: items, Reason: "timed out waiting for shipment"},
		}},
		{"blind refund of an unknown charge asks for at most the total", []input{stockReserved}, input{"Timeout", func(o *Order, _ time.Time) (Decision, error) {
			return o.Timeout(t0.Add(time.Hour))
		}}, []Command{
			{Kind: RefundPayment, OrderID: "o-1", AmountCents: 4999, Currency: "EUR", Reason: "timed out waiting for payment"},
			{Kind: ReleaseStock, OrderID: "o-1", Items: items, Reason: "timed out waiting for payment"},
		}},
		{"late shipment is cancelled by id", []input{stockReserved, charged, cancel}, scheduled, []Command{
			{Kind: CancelShipment, OrderID: "o-1", ShipmentID: "s-1", Reason: "changed my mind"},
		}},
		{"a blank cancel reason gets a default", []input{stockReserved}, input{"Cancel", func(o *Order, now time.Time) (Decision, error) {
			return o.Cancel("  ", now)
		}}, []Command{
			{Kind: ReleaseStock, OrderID: "o-1", Items: items, Reason: "cancelled by customer"},
		}},
		{"extra charge is refunded by its id", []input{stockReserved, charged}, chargedAs("p-2"), []Command{
			{Kind: RefundPayment, OrderID: "o-1", PaymentID: "p-2", AmountCents: 4999, Currency: "EUR", Reason: "duplicate charge"},
		}},
		{"a charge of another amount than the total is refunded, not shipped", []input{stockReserved}, input{"PaymentCharged(p-1, 100)", func(o *Order, now time.Time) (Decision, error) {
			return o.OnPaymentCharged("p-1", 100, now)
		}}, []Command{
			{Kind: RefundPayment, OrderID: "o-1", PaymentID: "p-1", AmountCents: 100, Currency: "EUR", Reason: "payment charged 100 cents, the order's total is 4999"},
			{Kind: ReleaseStock, OrderID: "o-1", Items: items, Reason: "payment charged 100 cents, the order's total is 4999"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := place(t)
			for _, in := range tc.steps {
				if _, err := in.do(o, t0); err != nil {
					t.Fatal(err)
				}
			}
			d, err := tc.last.do(o, t0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(d.Commands, tc.want) {
				t.Errorf("commands:\n got  %+v\n want %+v", d.Commands, tc.want)
			}
		})
	}
}

func TestDeadlineSurvivesRehydrate(t *testing.T) {
	o := place(t)
	if _, err := o.OnStockReserved(t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	r, err := Rehydrate(o.PendingEvents())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Deadline(), t0.Add(21*time.Second); !got.Equal(want) {
		t.Fatalf("Deadline after Rehydrate: got %v, want %v", got, want)
	}
	d, err := r.Timeout(t0.Add(21 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := commandKinds(d.Commands), []CommandKind{RefundPayment, ReleaseStock}; !slices.Equal(got, want) {
		t.Errorf("Timeout after Rehydrate: commands: got %v, want %v", got, want)
	}
	if got, want := r.Reason(), "timed out waiting for payment"; got != want {
		t.Errorf("Reason: got %q, want %q", got, want)
	}
	if got := r.Version(); got != 3 {
		t.Errorf("Version: got %d, want 3 (pending not counted)", got)
	}
}

func TestTerminalOrdersHaveNoDeadline(t *testing.T) {
	for name, steps := range map[string][]input{
		"completed": {stockReserved, charged, scheduled},
		"rejected":  {stockFailed},
		"cancelled": {stockReserved, declined, released},
	} {
		o := place(t)
		for _, in := range steps {
			if _, err := in.do(o, t0); err != nil {
				t.Fatal(err)
			}
		}
		if !o.Status().IsTerminal() || !o.Deadline().IsZero() {
			t.Errorf("%s: got status %s and deadline %v, want terminal and zero", name, o.Status(), o.Deadline())
		}
	}
}

func TestCompletedOrderExposesShipment(t *testing.T) {
	o := place(t)
	for _, in := range []input{stockReserved, charged, scheduled} {
		if _, err := in.do(o, t0); err != nil {
			t.Fatal(err)
		}
	}
	got := []string{o.PaymentID(), o.ShipmentID(), o.Carrier(), o.TrackingNumber(), o.Reason()}
	want := []string{"p-1", "s-1", "DHL", "TRK-1", ""}
	if !slices.Equal(got, want) {
		t.Errorf("PaymentID, ShipmentID, Carrier, TrackingNumber, Reason: got %q, want %q", got, want)
	}
}

func eventTypes(es []Event) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.EventType())
	}
	return out
}

func commandKinds(cs []Command) []CommandKind {
	var out []CommandKind
	for _, c := range cs {
		out = append(out, c.Kind)
	}
	return out
}

func count(cs []Command, k CommandKind) int {
	n := 0
	for _, c := range cs {
		if c.Kind == k {
			n++
		}
	}
	return n
}

func summary(d Decision) string {
	return fmt.Sprintf("events %v, commands %v", eventTypes(d.Events), commandKinds(d.Commands))
}

// A charge of another amount than the order's total ends the order
// CANCELLED once its refund and the stock's release are confirmed, never
// COMPLETED; the refund confirmed is what was charged.
func TestAChargeOfAnotherAmountCancelsTheOrder(t *testing.T) {
	o := place(t)
	steps := []struct {
		in   input
		want Status
	}{
		{stockReserved, StatusStockReserved},
		{input{"PaymentCharged(p-1, 100)", func(o *Order, now time.Time) (Decision, error) { return o.OnPaymentCharged("p-1", 100, now) }}, StatusCancelling},
		{refundedAs("p-1", 100), StatusCancelling},
		{released, StatusCancelled},
	}
	for i, st := range steps {
		if _, err := st.in.do(o, t0.Add(time.Duration(i+1)*time.Second)); err != nil {
			t.Fatalf("%s: %v", st.in.name, err)
		}
		if got := o.Status(); got != st.want {
			t.Fatalf("after %s: got %s, want %s", st.in.name, got, st.want)
		}
	}
}
