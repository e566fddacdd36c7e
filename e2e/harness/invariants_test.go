package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// errorsTB records the errors a check reports instead of failing the test,
// so that the test can look at them.
type errorsTB struct {
	*testing.T
	errs []string
}

func (r *errorsTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// fakeSystem is a System whose services are the given handlers, each
// serving both the API and the admin API of its service.
func fakeSystem(t *testing.T, handlers map[string]http.Handler) *System {
	t.Helper()
	s := &System{t: t, procs: map[string]*Process{}}
	for _, name := range Services {
		srv := httptest.NewServer(handlers[name])
		t.Cleanup(srv.Close)
		addr := strings.TrimPrefix(srv.URL, "http://")
		s.procs[name] = &Process{name: name, httpAddr: addr, adminAddr: addr}
	}
	s.client = &Client{sys: s}
	return s
}

func serveJSON(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}
}

// When the wait's deadline cuts a snapshot short, CheckInvariants reports
// the violations of the last complete snapshot, not just the deadline that
// cut the request: here the order service answers one whole snapshot with
// an order stuck PENDING, then inventory hangs in the next one until the
// wait is over.
func TestCheckInvariantsReportsLastCompleteSnapshot(t *testing.T) {
	var complete atomic.Int32 // snapshots served whole: the dead letters are read last
	var cut atomic.Bool       // a later snapshot reached the request that hangs
	stop := make(chan struct{})

	order := http.NewServeMux()
	pending := []Order{{ID: "o-1", Status: StatusPending, Awaiting: []string{"payment"}, PlacedAt: time.Now().UTC()}}
	orders, err := json.Marshal(map[string]any{"orders": pending})
	if err != nil {
		t.Fatal(err)
	}
	order.Handle("GET /orders", serveJSON(string(orders)))
	order.Handle("GET /queue/stats", serveJSON(`[]`))
	order.HandleFunc("GET /dlq", func(w http.ResponseWriter, r *http.Request) {
		serveJSON(`[]`)(w, r)
		complete.Add(1)
	})
	inventory := http.NewServeMux()
	inventory.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		if complete.Load() == 0 {
			serveJSON(`{"stock": [], "reservations": {}, "conserved": true}`)(w, r)
			return
		}
		cut.Store(true)
		select {
		case <-r.Context().Done(): // the client gave up: its wait is over
		case <-stop:
		}
	})
	payment := http.NewServeMux()
	payment.Handle("GET /state", serveJSON(`{"payments": {}, "consistent": true}`))
	payment.Handle("GET /payments", serveJSON(`[]`))
	payment.Handle("GET /ledger", serveJSON(`[]`))
	shipping := http.NewServeMux()
	shipping.Handle("GET /shipments", serveJSON(`[]`))
	shipping.Handle("GET /state", serveJSON(`{"shipments": {}}`))

	s := fakeSystem(t, map[string]http.Handler{
		OrderService: order, InventoryService: inventory, PaymentService: payment, ShippingService: shipping,
	})
	t.Cleanup(func() { close(stop) }) // before the servers close: they wait for their handlers

	rec := &errorsTB{T: t}
	snap := s.CheckInvariants(rec, Expect{Quiet: 2 * time.Second})

	if !cut.Load() {
		t.Fatalf("no snapshot after the first complete one reached the hanging request (complete: %d), want one cut short by the deadline", complete.Load())
	}
	if len(rec.errs) != 1 {
		t.Fatalf("got %d errors %q, want 1", len(rec.errs), rec.errs)
	}
	got := rec.errs[0]
	if want := "order o-1 is PENDING (awaiting [payment]), want a terminal status"; !strings.Contains(got, want) {
		t.Errorf("got error %q, want one naming the violation of the complete snapshot: %q", got, want)
	}
	if strings.Contains(got, "snapshot:") || strings.Contains(got, "deadline exceeded") {
		t.Errorf("got error %q, want the violations found, not the request the deadline cut", got)
	}
	if len(snap.Orders) != 1 || !snap.Inventory.Conserved || !snap.PaymentState.Consistent {
		t.Errorf("got snapshot %+v, want the complete one: 1 order, inventory and payments read", snap)
	}
}
