package adapters_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/services/payment/internal/adapters"
	"github.com/orderflow/orderflow/services/payment/internal/app"
	"github.com/orderflow/orderflow/services/payment/internal/domain"
)

// errCrash stands for the process dying after the gateway call and before
// the local commit (the crash_mid_handler fault point): the transaction
// rolls back and the queue redelivers the command, message id and all.
var errCrash = errors.New("crash before the commit")

// uow is the service's unit of work that keeps the messages of committed
// transactions for the test, and rolls the next transaction back when
// crash is set.
type uow struct {
	inner   app.UnitOfWork
	crash   bool
	emitted []contracts.Message
}

func (u *uow) Do(ctx context.Context, messageID string, fn func(ctx context.Context, tx app.Tx) error) (bool, error) {
	crash := u.crash
	u.crash = false
	var pending []contracts.Message
	dup, err := u.inner.Do(ctx, messageID, func(ctx context.Context, tx app.Tx) error {
		if err := fn(ctx, emitTx{Tx: tx, emitted: &pending}); err != nil {
			return err
		}
		if crash {
			return errCrash
		}
		return nil
	})
	if err == nil {
		u.emitted = append(u.emitted, pending...)
	}
	return dup, err
}

type emitTx struct {
	app.Tx
	emitted *[]contracts.Message
}

func (t emitTx) Emit(ctx context.Context, m contracts.Message) error {
	*t.emitted = append(*t.emitted, m)
	return t.Tx.Emit(ctx, m)
}

// env is payment's application on its SQLite store and the simulated
// gateway, as the service wires them, without the queue.
type env struct {
	t   *testing.T
	uow *uow
	app app.Application
}

func newEnv(t *testing.T) env {
	t.Helper()
	ctx := context.Background()
	db, err := servicedb.Open(ctx, filepath.Join(t.TempDir(), "payment.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := adapters.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(ctx, db, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := inbox.New(ctx, db, inbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := adapters.NewUnitOfWork(servicedb.UnitOfWorkConfig{DB: db, Inbox: in, Outbox: ob, ConsumerGroup: "payment"})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags("payment")})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := adapters.NewSimulatedGateway(db, reg)
	if err != nil {
		t.Fatal(err)
	}
	u := &uow{inner: inner}
	a, err := app.New(u, gw, adapters.NewReadModel(db))
	if err != nil {
		t.Fatal(err)
	}
	return env{t: t, uow: u, app: a}
}

const order = "o-1"

var charge = app.ChargePayment{MessageID: "charge-1",
	Charge: domain.Charge{OrderID: order, CustomerID: "c-1", AmountCents: 500, Currency: "EUR"}}

// The saga's blind refund at the step's deadline: it does not know the charge.
var refund = app.RefundPayment{MessageID: "refund-1", Refund: domain.Refund{OrderID: order, Currency: "EUR"}}

// crash runs cmd (a ChargePayment or a RefundPayment) and loses its
// transaction after the gateway call.
func (e env) crash(cmd any) {
	e.t.Helper()
	e.uow.crash = true
	var err error
	switch c := cmd.(type) {
	case app.ChargePayment:
		_, _, err = e.app.Commands.ChargePayment.Handle(context.Background(), c)
	case app.RefundPayment:
		_, _, err = e.app.Commands.RefundPayment.Handle(context.Background(), c)
	default:
		e.t.Fatalf("crash: %T is not a payment command", cmd)
	}
	if !errors.Is(err, errCrash) {
		e.t.Fatalf("%T before the crash: got %v, want %v", cmd, err, errCrash)
	}
}

func (e env) charge() domain.Payment {
	e.t.Helper()
	p, _, err := e.app.Commands.ChargePayment.Handle(context.Background(), charge)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e env) refund() int64 {
	e.t.Helper()
	amount, _, err := e.app.Commands.RefundPayment.Handle(context.Background(), refund)
	if err != nil {
		e.t.Fatal(err)
	}
	return amount
}

// last is the last message payment emitted.
func (e env) last() contracts.Message {
	e.t.Helper()
	if len(e.uow.emitted) == 0 {
		e.t.Fatal("no message emitted")
	}
	return e.uow.emitted[len(e.uow.emitted)-1]
}

// books returns the gateway's record of the order, the order's payment and
// its ledger.
func (e env) books() (app.GatewayRecord, domain.Payment, []app.LedgerEntry) {
	e.t.Helper()
	ctx, f := context.Background(), app.Filter{OrderID: order}
	recs, err := e.app.Queries.GatewayRecords(ctx, f)
	if err != nil || len(recs) != 1 {
		e.t.Fatalf("gateway records: got %+v, %v, want one", recs, err)
	}
	payments, err := e.app.Queries.Payments(ctx, f)
	if err != nil || len(payments) != 1 {
		e.t.Fatalf("payments: got %+v, %v, want one", payments, err)
	}
	ledger, err := e.app.Queries.Ledger(ctx, f)
	if err != nil {
		e.t.Fatal(err)
	}
	return recs[0], payments[0], ledger
}

// checkRefunded checks that the gateway's charge, taken and given back, is
// on record as such: the payment REFUNDED under the gateway's payment id,
// the ledger with the charge and its refund, the totals consistent (what
// the e2e invariants ask of a cancelled order).
func (e env) checkRefunded() {
	e.t.Helper()
	g, p, ledger := e.books()
	if g.Outcome != "ACCEPTED" || !g.Cancelled || g.AmountCents != 500 {
		e.t.Fatalf("gateway: got %+v, want the charge of 500 refunded", g)
	}
	if p.Status != domain.StatusRefunded || p.ID != g.Reference || p.AmountCents != 500 {
		e.t.Errorf("payment: got %+v, want REFUNDED as %s for 500", p, g.Reference)
	}
	if len(ledger) != 2 || ledger[0].Kind != domain.EntryCharge || ledger[0].AmountCents != 500 ||
		ledger[1].Kind != domain.EntryRefund || ledger[1].AmountCents != -500 ||
		ledger[0].PaymentID != g.Reference || ledger[1].PaymentID != g.Reference {
		e.t.Errorf("ledger: got %+v, want the charge of 500 by %s and its refund", ledger, g.Reference)
	}
	st, err := e.app.Queries.State(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if !st.Consistent || st.ChargedCents != 500 || st.RefundedCents != 500 || st.OutstandingCents != 0 {
		e.t.Errorf("state: got %+v, want 500 charged and refunded, consistent", st)
	}
}

// Case A: the gateway charged, the charge's transaction was lost, and the
// saga's blind refund came before the redelivered charge. The refund
// answers with the money the gateway gave back, and the ledger shows both
// movements; the late charge is answered as a charge after a refund.
func TestRefundOfAChargeNeverRecorded(t *testing.T) {
	e := newEnv(t)
	e.crash(charge)

	if got := e.refund(); got != 500 {
		t.Errorf("refunded: got %d cents, want 500 (what the gateway gave back)", got)
	}
	g, _, _ := e.books()
	if r, ok := e.last().(contracts.PaymentRefunded); !ok || r.PaymentID != g.Reference || r.AmountCents != 500 {
		t.Errorf("answer: got %#v, want PaymentRefunded of 500 by %s", e.last(), g.Reference)
	}
	e.checkRefunded()

	p := e.charge() // redelivered
	if d, ok := e.last().(contracts.PaymentDeclined); !ok || d.Reason != domain.ReasonRefunded || p.Status != domain.StatusRefunded {
		t.Errorf("late charge: got %s, answered %#v, want REFUNDED answered PaymentDeclined %q", p.Status, e.last(), domain.ReasonRefunded)
	}
	e.checkRefunded()
}

// Case B: the gateway charged, then refunded, and both transactions were
// lost; the charge is redelivered first. The gateway repeats its first
// answer (approved), but the money is back: no CHARGED payment, no
// PaymentCharged. The redelivered refund then confirms the refund.
func TestChargeAlreadyRefundedAtTheGateway(t *testing.T) {
	e := newEnv(t)
	e.crash(charge)
	e.crash(refund)

	p := e.charge()
	if d, ok := e.last().(contracts.PaymentDeclined); !ok || d.Reason != domain.ReasonRefunded || p.Status != domain.StatusRefunded {
		t.Errorf("charge after the refund: got %s, answered %#v, want REFUNDED answered PaymentDeclined %q", p.Status, e.last(), domain.ReasonRefunded)
	}
	e.checkRefunded()

	if got := e.refund(); got != 500 { // redelivered
		t.Errorf("refunded: got %d cents, want 500", got)
	}
	g, _, _ := e.books()
	if r, ok := e.last().(contracts.PaymentRefunded); !ok || r.PaymentID != g.Reference || r.AmountCents != 500 {
		t.Errorf("answer: got %#v, want PaymentRefunded of 500 by %s", e.last(), g.Reference)
	}
	e.checkRefunded()
	for _, m := range e.uow.emitted {
		if m.MessageType() == contracts.TypePaymentCharged {
			t.Errorf("emitted %#v for a charge the gateway had refunded", m)
		}
	}
}

// A registry without the payment flags (another service's, or none) is
// refused when the gateway is made, not found by a panic in the first
// charge.
func TestNewSimulatedGatewayRequiresThePaymentFlags(t *testing.T) {
	db := migratedDB(t)
	if _, err := adapters.NewSimulatedGateway(db, nil); err == nil {
		t.Error("nil registry: got nil error, want one")
	}
	shipping, err := faults.New(faults.Config{Flags: faults.ServiceFlags("shipping")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adapters.NewSimulatedGateway(db, shipping); !errors.Is(err, faults.ErrUnknownFlag) {
		t.Errorf("shipping's registry: got %v, want ErrUnknownFlag", err)
	}
	payment, err := faults.New(faults.Config{Flags: faults.ServiceFlags("payment")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adapters.NewSimulatedGateway(db, payment); err != nil {
		t.Errorf("payment's registry: got %v, want nil", err)
	}
}

// A simulated transient failure says it is one: an operator reading a
// dead letter's last error (and the e2e suite) tells it from a bug.
func TestSimulatedTransientFailureSaysSo(t *testing.T) {
	ctx := context.Background()
	db := migratedDB(t)
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags("payment")})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Set(faults.PaymentTransientErrorRate, "1"); err != nil {
		t.Fatal(err)
	}
	g, err := adapters.NewSimulatedGateway(db, reg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Authorize(ctx, domain.Charge{OrderID: "o-1", CustomerID: "c-1", AmountCents: 500, Currency: "EUR"})
	if err == nil || !strings.Contains(err.Error(), "(simulated transient error)") {
		t.Errorf("authorize with payment_transient_error_rate 1: got %v, want an error saying it is a simulated transient one", err)
	}
}

// migratedDB is a new payment database with the service's tables, closed
// when the test ends.
func migratedDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := servicedb.Open(context.Background(), filepath.Join(t.TempDir(), "payment.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := adapters.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}
