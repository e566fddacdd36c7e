package service_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicehost/hosttest"
	"github.com/orderflow/orderflow/services/payment/internal/app"
	"github.com/orderflow/orderflow/services/payment/service"
)

// harness is the service running in hosttest's harness, plus the helpers
// below.
type harness struct{ *hosttest.Harness }

// start runs the payment service on a fresh queue and database.
func start(t *testing.T) harness {
	return harness{hosttest.Start(t, hosttest.Config{Name: service.Name, Events: contracts.TopicPaymentEvents,
		New: service.New})}
}

func charge(order string) contracts.ChargePayment {
	return contracts.ChargePayment{OrderID: order, CustomerID: "c-1", AmountCents: 4999, Currency: "EUR"}
}

func (h harness) state() app.State {
	h.T.Helper()
	var st app.State
	h.GetOK("/state", &st)
	return st
}

// gateway returns the simulated provider's record of order, failing the
// test unless there is exactly one.
func (h harness) gateway(order string) app.GatewayRecord {
	h.T.Helper()
	var recs []app.GatewayRecord
	h.GetOK("/gateway?order_id="+order, &recs)
	if len(recs) != 1 {
		h.T.Fatalf("gateway records of %s: got %+v, want one", order, recs)
	}
	return recs[0]
}

func TestChargeRefundAndDuplicates(t *testing.T) {
	h := start(t)

	id := h.Publish(charge("o-1"), "")
	m, msg := h.Next()
	charged, ok := m.(contracts.PaymentCharged)
	if !ok || charged.PaymentID == "" || charged.AmountCents != 4999 || charged.Currency != "EUR" {
		t.Fatalf("event: got %#v, want PaymentCharged of 4999 EUR with a payment id", m)
	}
	h.SameTrace(msg)
	if c := msg.Metadata.Get(contracts.MetadataCausationID); c != id {
		t.Errorf("causation_id: got %q, want %q", c, id)
	}

	// A redelivery is processed once; a repeated command repeats the answer.
	h.Publish(charge("o-1"), id)
	h.Publish(charge("o-1"), "")
	m, _ = h.Next()
	if again, ok := m.(contracts.PaymentCharged); !ok || again.PaymentID != charged.PaymentID {
		t.Fatalf("repeated charge: got %#v, want PaymentCharged %s again", m, charged.PaymentID)
	}
	h.Quiet(200 * time.Millisecond)
	// The gateway was asked three times (the redelivery too: it comes
	// before the inbox) and charged once.
	if g := h.gateway("o-1"); g.Outcome != "ACCEPTED" || g.Reference != charged.PaymentID || g.Requests != 3 || g.Cancelled {
		t.Errorf("gateway: got %+v, want one accepted charge %s asked 3 times, not refunded", g, charged.PaymentID)
	}

	for range 2 {
		h.Publish(contracts.RefundPayment{OrderID: "o-1", PaymentID: charged.PaymentID, AmountCents: 4999, Currency: "EUR"}, "")
		m, _ := h.Next()
		r, ok := m.(contracts.PaymentRefunded)
		if !ok || r.PaymentID != charged.PaymentID || r.AmountCents != 4999 {
			t.Fatalf("refund: got %#v, want PaymentRefunded of %s for 4999", m, charged.PaymentID)
		}
	}
	st := h.state()
	if !st.Consistent || st.ChargedCents != 4999 || st.RefundedCents != 4999 || st.NetCents != 0 || st.Payments["REFUNDED"] != 1 {
		t.Errorf("state: got %+v, want one refunded charge of 4999, consistent", st)
	}
	var ledger []struct {
		AmountCents int64 `json:"amount_cents"`
	}
	h.GetJSON("/ledger?order_id=o-1", &ledger)
	if len(ledger) != 2 || ledger[0].AmountCents != 4999 || ledger[1].AmountCents != -4999 {
		t.Errorf("ledger: got %+v, want a charge of 4999 and a refund of -4999", ledger)
	}
	if g := h.gateway("o-1"); !g.Cancelled || g.Cancels != 2 || g.Reference != charged.PaymentID {
		t.Errorf("gateway after two refunds: got %+v, want %s refunded once, asked twice", g, charged.PaymentID)
	}
}

// The lists take ?limit from 1 to 100000; anything else is a 400 naming
// the parameter.
func TestListLimit(t *testing.T) {
	h := start(t)
	for _, order := range []string{"o-1", "o-2"} {
		h.Publish(charge(order), "")
		h.Next()
	}
	h.CheckListLimit("/payments", "/ledger", "/gateway")
}

func TestRefundBeforeChargeAndDeclines(t *testing.T) {
	h := start(t)

	h.Publish(contracts.RefundPayment{OrderID: "o-early", AmountCents: 100, Currency: "EUR"}, "")
	m, _ := h.Next()
	if r, ok := m.(contracts.PaymentRefunded); !ok || r.AmountCents != 0 || r.PaymentID != "" {
		t.Fatalf("refund of nothing: got %#v, want PaymentRefunded of 0", m)
	}
	h.Publish(charge("o-early"), "")
	if m, _ := h.Next(); m.MessageType() != contracts.TypePaymentDeclined {
		t.Fatalf("late charge: got %#v, want PaymentDeclined", m)
	}

	if code := h.Send(http.MethodPut, "/faults/"+faults.PaymentDeclineRate, `{"value":"1"}`); code != 200 {
		t.Fatalf("PUT decline rate: got %d", code)
	}
	h.Publish(charge("o-declined"), "")
	m, _ = h.Next()
	if d, ok := m.(contracts.PaymentDeclined); !ok || d.Reason == "" {
		t.Fatalf("declined: got %#v, want PaymentDeclined with a reason", m)
	}
	st := h.state()
	if !st.Consistent || st.ChargedCents != 0 || st.Payments["DECLINED"] != 1 || st.Payments["VOIDED"] != 1 {
		t.Errorf("state: got %+v, want no money moved, 1 declined, 1 voided", st)
	}
	// The refund reached the gateway first and voided the order there, so
	// the late charge was declined by the provider, not merely ignored
	// after it charged.
	if g := h.gateway("o-early"); g.Outcome != "VOIDED" || g.Reference != "" || g.Requests != 1 || g.Cancels != 1 {
		t.Errorf("gateway of o-early: got %+v, want VOIDED with one refund and one charge request, no payment", g)
	}
	if g := h.gateway("o-declined"); g.Outcome != "REFUSED" || g.Reference != "" {
		t.Errorf("gateway of o-declined: got %+v, want REFUSED", g)
	}
}

// A transient gateway error is retried until MaxAttempts (3 in the
// harness: the dead letter must record 3 attempts), then dead-lettered;
// replayed once the gateway recovers, it succeeds.
func TestTransientErrorsRetryThenReplay(t *testing.T) {
	h := start(t)
	if err := h.Faults.Set(faults.PaymentTransientErrorRate, "1"); err != nil {
		t.Fatal(err)
	}
	id := h.Publish(charge("o-flaky"), "")
	h.WaitDeadLetter(contracts.TopicPaymentCommands, id, 3)
	h.Quiet(100 * time.Millisecond)

	if err := h.Faults.Set(faults.PaymentTransientErrorRate, "0"); err != nil {
		t.Fatal(err)
	}
	var dls []struct {
		ID int64 `json:"id"`
	}
	h.GetJSON("/dlq", &dls)
	if len(dls) != 1 {
		t.Fatalf("dead letters: got %d, want 1", len(dls))
	}
	if code := h.Send(http.MethodPost, fmt.Sprintf("/dlq/%d/replay", dls[0].ID), ""); code != 200 {
		t.Fatalf("replay: got %d, want 200", code)
	}
	if m, _ := h.Next(); m.MessageType() != contracts.TypePaymentCharged {
		t.Fatalf("after replay: got %s, want PaymentCharged", m.MessageType())
	}
	if st := h.state(); st.Payments["CHARGED"] != 1 || !st.Consistent {
		t.Errorf("state: got %+v, want one charge", st)
	}
}

func TestUndecodableMessageIsDeadLettered(t *testing.T) {
	h := start(t)
	id := h.PublishRaw(contracts.TopicPaymentCommands, contracts.TypeChargePayment)
	h.WaitDeadLetter(contracts.TopicPaymentCommands, id, 1)
	h.Poison()
}

func TestCrashAfterCommitChargesOnce(t *testing.T) {
	h := start(t)
	h.CrashOnce(faults.CrashAfterCommit, charge("o-crash"), contracts.TypePaymentCharged)
	if st := h.state(); st.Payments["CHARGED"] != 1 || st.ChargedCents != 4999 || st.OrdersChargedTwice != 0 {
		t.Errorf("state: got %+v, want exactly one charge", st)
	}
	var payments []struct {
		ID string `json:"payment_id"`
	}
	h.GetOK("/payments?order_id=o-crash", &payments)
	if g := h.gateway("o-crash"); len(payments) != 1 || g.Reference != payments[0].ID || g.Requests != 2 {
		t.Errorf("gateway: got %+v for payments %+v, want the one payment's charge asked twice (before and after the crash)", g, payments)
	}
}

// A crash after the gateway charged but before the local commit: the
// redelivered command asks the gateway again with the same order id and
// gets the same payment, so the customer is charged once.
func TestCrashBeforeCommitChargesOnceAtTheGateway(t *testing.T) {
	h := start(t)
	h.CrashOnce(faults.CrashMidHandler, charge("o-mid"), contracts.TypePaymentCharged)
	var payments []struct {
		ID string `json:"payment_id"`
	}
	h.GetOK("/payments?order_id=o-mid", &payments)
	g := h.gateway("o-mid")
	if len(payments) != 1 || g.Outcome != "ACCEPTED" || g.Reference != payments[0].ID || g.Requests != 2 {
		t.Errorf("gateway: got %+v for payments %+v, want one accepted charge, the recorded payment, asked twice", g, payments)
	}
	if st := h.state(); st.ChargedCents != 4999 || st.OrdersChargedTwice != 0 {
		t.Errorf("state: got %+v, want one charge of 4999", st)
	}
}
