package adapters_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/services/shipping/internal/adapters"
	"github.com/orderflow/orderflow/services/shipping/internal/app"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
)

// errCrash stands for the process dying after the carrier call and before
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

// env is shipping's application on its SQLite store and the simulated
// carrier, as the service wires them, without the queue.
type env struct {
	t   *testing.T
	uow *uow
	app app.Application
}

func newEnv(t *testing.T) env {
	t.Helper()
	ctx := context.Background()
	db, err := servicedb.Open(ctx, filepath.Join(t.TempDir(), "shipping.db"))
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
	inner, err := adapters.NewUnitOfWork(servicedb.UnitOfWorkConfig{DB: db, Inbox: in, Outbox: ob, ConsumerGroup: "shipping"})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags("shipping")})
	if err != nil {
		t.Fatal(err)
	}
	carrier, err := adapters.NewSimulatedCarrier(db, reg)
	if err != nil {
		t.Fatal(err)
	}
	u := &uow{inner: inner}
	a, err := app.New(u, carrier, adapters.NewReadModel(db))
	if err != nil {
		t.Fatal(err)
	}
	return env{t: t, uow: u, app: a}
}

const order = "o-1"

var schedule = app.ScheduleShipment{MessageID: "schedule-1", Schedule: domain.Schedule{OrderID: order,
	Lines:   []domain.Line{{SKU: "SKU-1", Quantity: 2}},
	Address: domain.Address{Name: "Ada", Line1: "1 Road", City: "London", Country: "GB"}}}

// The saga's blind cancellation at the step's deadline: it does not know
// the shipment.
var cancel = app.CancelShipment{MessageID: "cancel-1", Cancel: domain.Cancel{OrderID: order}}

// crash runs cmd (a ScheduleShipment or a CancelShipment) and loses its
// transaction after the carrier call.
func (e env) crash(cmd any) {
	e.t.Helper()
	e.uow.crash = true
	var err error
	switch c := cmd.(type) {
	case app.ScheduleShipment:
		_, _, err = e.app.Commands.ScheduleShipment.Handle(context.Background(), c)
	case app.CancelShipment:
		_, _, err = e.app.Commands.CancelShipment.Handle(context.Background(), c)
	default:
		e.t.Fatalf("crash: %T is not a shipping command", cmd)
	}
	if !errors.Is(err, errCrash) {
		e.t.Fatalf("%T before the crash: got %v, want %v", cmd, err, errCrash)
	}
}

func (e env) schedule() domain.Shipment {
	e.t.Helper()
	sh, _, err := e.app.Commands.ScheduleShipment.Handle(context.Background(), schedule)
	if err != nil {
		e.t.Fatal(err)
	}
	return sh
}

func (e env) cancel() domain.CancelResult {
	e.t.Helper()
	res, _, err := e.app.Commands.CancelShipment.Handle(context.Background(), cancel)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// last is the last message shipping emitted.
func (e env) last() contracts.Message {
	e.t.Helper()
	if len(e.uow.emitted) == 0 {
		e.t.Fatal("no message emitted")
	}
	return e.uow.emitted[len(e.uow.emitted)-1]
}

// checkWithdrawn checks that the carrier's booking, made and withdrawn, is
// on record as such: the shipment CANCELLED under the carrier's shipment id
// (what the e2e invariants ask of a cancelled order), and returns that id.
func (e env) checkWithdrawn() string {
	e.t.Helper()
	ctx, f := context.Background(), app.Filter{OrderID: order}
	recs, err := e.app.Queries.CarrierRecords(ctx, f)
	if err != nil || len(recs) != 1 {
		e.t.Fatalf("carrier records: got %+v, %v, want one", recs, err)
	}
	c := recs[0]
	if c.Outcome != "ACCEPTED" || !c.Cancelled || c.Reference == "" {
		e.t.Fatalf("carrier: got %+v, want the booking withdrawn", c)
	}
	shipments, err := e.app.Queries.Shipments(ctx, f)
	if err != nil || len(shipments) != 1 {
		e.t.Fatalf("shipments: got %+v, %v, want one", shipments, err)
	}
	if sh := shipments[0]; sh.Status != domain.StatusCancelled || sh.ID != c.Reference || sh.TrackingNumber == "" {
		e.t.Errorf("shipment: got %+v, want CANCELLED as %s with its tracking number", sh, c.Reference)
	}
	return c.Reference
}

// Case A: the carrier booked, the booking's transaction was lost, and the
// saga's blind cancellation came before the redelivered request. The
// cancellation answers with the booking the carrier withdrew; the late
// request is answered as one after a cancellation.
func TestCancelOfABookingNeverRecorded(t *testing.T) {
	e := newEnv(t)
	e.crash(schedule)

	res := e.cancel()
	id := e.checkWithdrawn()
	if !res.Cancelled || res.ShipmentID != id {
		t.Errorf("cancel: got %+v, want %s cancelled", res, id)
	}
	if c, ok := e.last().(contracts.ShipmentCancelled); !ok || c.ShipmentID != id {
		t.Errorf("answer: got %#v, want ShipmentCancelled of %s", e.last(), id)
	}

	sh := e.schedule() // redelivered
	if f, ok := e.last().(contracts.ShipmentFailed); !ok || f.Reason != domain.ReasonCancelled || sh.Status != domain.StatusCancelled {
		t.Errorf("late request: got %s, answered %#v, want CANCELLED answered ShipmentFailed %q", sh.Status, e.last(), domain.ReasonCancelled)
	}
	e.checkWithdrawn()
}

// Case B: the carrier booked, then withdrew the booking, and both
// transactions were lost; the request is redelivered first. The carrier
// repeats its first answer (accepted), but carries nothing: no SCHEDULED
// shipment, no ShipmentScheduled. The redelivered cancellation then
// confirms it.
func TestBookingAlreadyWithdrawnAtTheCarrier(t *testing.T) {
	e := newEnv(t)
	e.crash(schedule)
	e.crash(cancel)

	sh := e.schedule()
	if f, ok := e.last().(contracts.ShipmentFailed); !ok || f.Reason != domain.ReasonCancelled || sh.Status != domain.StatusCancelled {
		t.Errorf("request after the cancellation: got %s, answered %#v, want CANCELLED answered ShipmentFailed %q", sh.Status, e.last(), domain.ReasonCancelled)
	}
	id := e.checkWithdrawn()

	if res := e.cancel(); !res.Cancelled || res.ShipmentID != id { // redelivered
		t.Errorf("cancel: got %+v, want %s cancelled", res, id)
	}
	if c, ok := e.last().(contracts.ShipmentCancelled); !ok || c.ShipmentID != id {
		t.Errorf("answer: got %#v, want ShipmentCancelled of %s", e.last(), id)
	}
	e.checkWithdrawn()
	for _, m := range e.uow.emitted {
		if m.MessageType() == contracts.TypeShipmentScheduled {
			t.Errorf("emitted %#v for a booking the carrier had withdrawn", m)
		}
	}
}

// A registry without the shipping flags (another service's, or none) is
// refused when the carrier is made, not found by a panic in the first
// booking.
func TestNewSimulatedCarrierRequiresTheShippingFlags(t *testing.T) {
	db := migratedDB(t)
	if _, err := adapters.NewSimulatedCarrier(db, nil); err == nil {
		t.Error("nil registry: got nil error, want one")
	}
	payment, err := faults.New(faults.Config{Flags: faults.ServiceFlags("payment")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adapters.NewSimulatedCarrier(db, payment); !errors.Is(err, faults.ErrUnknownFlag) {
		t.Errorf("payment's registry: got %v, want ErrUnknownFlag", err)
	}
	shipping, err := faults.New(faults.Config{Flags: faults.ServiceFlags("shipping")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adapters.NewSimulatedCarrier(db, shipping); err != nil {
		t.Errorf("shipping's registry: got %v, want nil", err)
	}
}

// The lines and the address are stored as JSON in their columns, in the
// format of the rows already written: it changes only with a migration.
func TestShipmentColumnsJSON(t *testing.T) {
	ctx := context.Background()
	db := migratedDB(t)
	store := adapters.NewReadModel(db)
	for _, tc := range []struct {
		sh             domain.Shipment
		lines, address string
	}{
		{domain.Shipment{ID: "shp_1", OrderID: "o-1", Status: domain.StatusScheduled, Lines: []domain.Line{{SKU: "SKU-1", Quantity: 2}},
			Address: domain.Address{Name: "Ada", Line1: "1 Main St", Line2: "Flat 2", City: "Paris", PostalCode: "75001", Country: "FR"}},
			`[{"sku":"SKU-1","quantity":2}]`, `{"name":"Ada","line1":"1 Main St","line2":"Flat 2","city":"Paris","postal_code":"75001","country":"FR"}`},
		{domain.Shipment{OrderID: "o-2", Status: domain.StatusFailed, Address: domain.Address{Name: "Bob", Line1: "2 High St", City: "Leeds", Country: "GB"}},
			`[]`, `{"name":"Bob","line1":"2 High St","city":"Leeds","country":"GB"}`},
	} {
		if err := store.SaveShipment(ctx, tc.sh); err != nil {
			t.Fatal(err)
		}
		var lines, address string
		if err := db.QueryRowContext(ctx, `SELECT lines, address FROM shipments WHERE order_id = ?`, tc.sh.OrderID).Scan(&lines, &address); err != nil {
			t.Fatal(err)
		}
		if lines != tc.lines || address != tc.address {
			t.Errorf("%s: got lines %s address %s, want %s %s", tc.sh.OrderID, lines, address, tc.lines, tc.address)
		}
		got, err := store.Shipment(ctx, tc.sh.OrderID)
		if err != nil {
			t.Fatal(err)
		}
		want := tc.sh
		if want.Lines == nil {
			want.Lines = []domain.Line{}
		}
		if got == nil || !reflect.DeepEqual(*got, want) {
			t.Errorf("%s read back: got %+v, want %+v", tc.sh.OrderID, got, want)
		}
	}
}

// migratedDB is a new shipping database with the service's tables, closed
// when the test ends.
func migratedDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := servicedb.Open(context.Background(), filepath.Join(t.TempDir(), "shipping.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := adapters.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}
