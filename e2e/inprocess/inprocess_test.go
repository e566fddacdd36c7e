package inprocess_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
	"github.com/orderflow/orderflow/e2e/inprocess"
	"github.com/orderflow/orderflow/pkg/faults"
)

// stepTimeout is the saga's step timeout in these tests: short, so that
// the timeout scenario is quick, and far above a step's latency even under
// -race on a loaded 2-core machine (2s was seen to time out a happy order).
const stepTimeout = 6 * time.Second

// terminalWithin bounds how long a scenario's orders take to be terminal.
const terminalWithin = 30 * time.Second

// fault is a fault flag set through a service's admin API while a
// scenario's orders are placed.
type fault struct{ service, name, value string }

// scenario is one way through the saga, for a batch of orders.
type scenario struct {
	name   string
	orders int
	items  []harness.Item
	faults []fault
	// paused is a service stopped while the orders are placed and started
	// again once every order waits on it (and, unless cancel, once the
	// step timeout has fired for each).
	paused string
	// cancel: the customer cancels each order while it waits on payment.
	cancel bool
	want   outcome
}

func items(kv ...any) []harness.Item {
	var out []harness.Item
	for i := 0; i < len(kv); i += 2 {
		out = append(out, harness.Item{SKU: kv[i].(string), Quantity: kv[i+1].(int)})
	}
	return out
}

// none is no record at a service.
var none = []string{""}

var scenarios = []scenario{
	{
		name: "happy path", orders: 70, items: items("SKU-1", 1, "SKU-3", 2),
		want: outcome{status: harness.StatusCompleted, reservation: []string{"RESERVED"}, payment: []string{"CHARGED"}, shipment: []string{"SCHEDULED"}},
	},
	{
		name: "out of stock (inventory fault)", orders: 20, items: items("SKU-2", 1, "SKU-4", 1),
		faults: []fault{{inprocess.Inventory, faults.InventoryOutOfStockSKUs, "SKU-4"}},
		want:   outcome{status: harness.StatusRejected, reservation: []string{"FAILED"}, payment: none, shipment: none},
	},
	{
		name: "out of stock (more than the stock)", orders: 5, items: items("SKU-5", 11),
		want: outcome{status: harness.StatusRejected, reservation: []string{"FAILED"}, payment: none, shipment: none},
	},
	{
		name: "payment declined", orders: 25, items: items("SKU-2", 1),
		faults: []fault{{inprocess.Payment, faults.PaymentDeclineRate, "1"}},
		want: outcome{status: harness.StatusCancelled, reason: "payment declined",
			reservation: []string{"RELEASED"}, payment: []string{"DECLINED"}, shipment: none},
	},
	{
		name: "shipping failure", orders: 25, items: items("SKU-3", 1, "SKU-4", 2),
		faults: []fault{{inprocess.Shipping, faults.ShippingFailureRate, "1"}},
		want: outcome{status: harness.StatusCancelled, reason: "shipment failed",
			reservation: []string{"RELEASED"}, payment: []string{"REFUNDED"}, shipment: []string{"FAILED"}},
	},
	{
		// The charge is made once payment is back, and refunded.
		name: "customer cancel", orders: 25, items: items("SKU-1", 2), paused: inprocess.Payment, cancel: true,
		want: outcome{status: harness.StatusCancelled, reason: "changed my mind",
			reservation: []string{"RELEASED"}, payment: []string{"REFUNDED", "VOIDED"}, shipment: none},
	},
	{
		// The blind refund at the deadline and the late charge meet at
		// payment in either order: refunded, or voided (the late charge
		// declined).
		name: "step timeout", orders: 30, items: items("SKU-4", 1), paused: inprocess.Payment,
		want: outcome{status: harness.StatusCancelled, reason: "timed out waiting for payment",
			reservation: []string{"RELEASED"}, payment: []string{"REFUNDED", "VOIDED"}, shipment: none},
	},
}

// TestSagaScenariosOnSQLiteQueue drives 200 orders through every way the
// saga can go, on a real SQLite queue file, then checks the invariants.
func TestSagaScenariosOnSQLiteQueue(t *testing.T) {
	dir := t.TempDir()
	c := start(t, inprocess.Config{
		QueueURL: "sqlite://" + filepath.Join(dir, "queue.db"), Dir: dir, StepTimeout: stepTimeout, Concurrency: 8,
	})
	restocked := map[string]int{"SKU-1": 25}
	c.mustDo(t, http.StatusOK, http.MethodPost, c.admin(inprocess.Inventory, "/stock/SKU-1/restock"), map[string]int{"quantity": 25}, nil)

	want := map[string]outcome{}
	total := 0
	for _, sc := range scenarios {
		total += sc.orders
		t.Run(sc.name, func(t *testing.T) {
			for _, id := range c.run(t, sc) {
				want[id] = sc.want
			}
		})
	}
	if total != 200 {
		t.Errorf("orders in the scenarios: got %d, want 200", total)
	}
	c.checkInvariants(t, want, restocked)
}

// run drives one scenario's orders until each is terminal, checks their
// status and reason, and returns their ids.
func (c *client) run(t *testing.T, sc scenario) []string {
	for _, f := range sc.faults {
		c.setFault(t, f.service, f.name, f.value)
	}
	if sc.paused != "" {
		if err := c.sys.StopService(sc.paused); err != nil {
			t.Fatalf("stop %s: %v", sc.paused, err)
		}
		restarted := false
		restart := func() {
			if !restarted {
				restarted = true
				if err := c.sys.StartService(t.Context(), sc.paused); err != nil {
					t.Fatalf("start %s again: %v", sc.paused, err)
				}
			}
		}
		defer restart()
		ids := c.placeAll(t, sc.orders, sc.items)
		// Stock reserved: each order has asked for its charge and waits.
		c.waitOrders(t, ids, terminalWithin, "waiting on payment", func(o harness.Order) bool {
			return o.Status == harness.StatusStockReserved
		})
		if sc.cancel {
			for _, id := range ids {
				var o harness.Order
				c.mustDo(t, http.StatusOK, http.MethodPost, c.sys.OrderURL()+"/orders/"+id+"/cancel", map[string]string{"reason": "changed my mind"}, &o)
				if o.Status != harness.StatusCancelling {
					t.Errorf("order %s after cancel: got %s, want %s", id, o.Status, harness.StatusCancelling)
				}
			}
		} else {
			c.waitOrders(t, ids, 4*stepTimeout+terminalWithin, "cancelling after the step timeout", func(o harness.Order) bool {
				return o.Status == harness.StatusCancelling
			})
		}
		restart()
		return c.finish(t, sc, ids)
	}
	return c.finish(t, sc, c.placeAll(t, sc.orders, sc.items))
}

// finish waits for the orders to be terminal and checks their status and
// reason.
func (c *client) finish(t *testing.T, sc scenario, ids []string) []string {
	t.Helper()
	final := c.waitOrders(t, ids, terminalWithin, "terminal", func(o harness.Order) bool { return harness.Terminal(o.Status) })
	for _, id := range ids {
		if o := final[id]; o.Status != sc.want.status || !strings.Contains(o.Reason, sc.want.reason) {
			t.Errorf("order %s: got %s (%q), want %s (%q)", id, o.Status, o.Reason, sc.want.status, sc.want.reason)
		}
	}
	return ids
}

// TestHappyPathOnEveryQueue runs orders through the happy path on the
// in-memory queue and, when ORDERFLOW_TEST_POSTGRES_URL names a server,
// on PostgreSQL (the test fails if the server does not answer).
func TestHappyPathOnEveryQueue(t *testing.T) {
	tests := []struct {
		name     string
		orders   int
		queueURL func(t *testing.T) string
	}{
		{"memory", 40, func(*testing.T) string { return "memory://" }},
		{"postgres", 20, func(t *testing.T) string { return harness.PostgresQueueURL(t) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := start(t, inprocess.Config{QueueURL: tc.queueURL(t), Dir: t.TempDir()})
			sc := scenarios[0]
			sc.orders = tc.orders
			want := map[string]outcome{}
			for _, id := range c.finish(t, sc, c.placeAll(t, sc.orders, sc.items)) {
				want[id] = sc.want
			}
			c.checkInvariants(t, want, nil)
		})
	}
}

// TestSystemLifecycle checks what the package promises about its services:
// every one ready after Start, a restarted one on the same address, and
// nothing left after Stop.
func TestSystemLifecycle(t *testing.T) {
	ctx := t.Context()
	if bad, err := inprocess.Start(ctx, inprocess.Config{QueueURL: "nats://nowhere"}); err == nil {
		t.Error("Start with a bad queue URL: got nil error, want one")
		_ = bad.Stop()
	}
	// start stops the system when the test ends, however it ends, so that
	// a failure half-way leaves no service running; the explicit Stop at
	// the end, whose effects are checked, makes that one do nothing.
	c := start(t, inprocess.Config{QueueURL: "memory://"})
	sys := c.sys
	readyz := func(service string) int {
		code, _ := c.do(http.MethodGet, c.admin(service, "/readyz"), nil, nil)
		return code
	}
	for _, name := range inprocess.Services {
		if got := readyz(name); got != http.StatusOK {
			t.Errorf("%s /readyz: got %d, want 200", name, got)
		}
	}
	if code, err := c.do(http.MethodGet, sys.OrderURL()+"/readyz", nil, nil); err != nil || code != http.StatusOK {
		t.Errorf("order API /readyz: got %d (%v), want 200", code, err)
	}

	// Faults is the registry the admin API serves.
	if err := sys.Faults(inprocess.Payment).Set(faults.PaymentDeclineRate, "0.25"); err != nil {
		t.Fatal(err)
	}
	var flag faults.State
	c.mustDo(t, http.StatusOK, http.MethodGet, c.admin(inprocess.Payment, "/faults/"+faults.PaymentDeclineRate), nil, &flag)
	if flag.Value != "0.25" || flag.Source != "api" {
		t.Errorf("GET /faults/%s after Faults().Set: got value %q from %q, want 0.25 from api", faults.PaymentDeclineRate, flag.Value, flag.Source)
	}

	admin := sys.AdminURL(inprocess.Shipping)
	if err := sys.StopService(inprocess.Shipping); err != nil {
		t.Fatal(err)
	}
	if got := readyz(inprocess.Shipping); got != 0 {
		t.Errorf("stopped shipping /readyz: got %d, want no answer", got)
	}
	if err := sys.StartService(ctx, inprocess.Shipping); err != nil {
		t.Fatal(err)
	}
	if got := sys.AdminURL(inprocess.Shipping); got != admin {
		t.Errorf("restarted shipping admin URL: got %s, want %s as before", got, admin)
	}
	if got := readyz(inprocess.Shipping); got != http.StatusOK {
		t.Errorf("restarted shipping /readyz: got %d, want 200", got)
	}

	dir := sys.Dir()
	if err := sys.Stop(); err != nil {
		t.Errorf("Stop: got %v, want nil", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory after Stop: got %v, want it removed", err)
	}
}
