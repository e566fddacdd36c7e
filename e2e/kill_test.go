package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// killWhilePlacing is scenario 7's load: while orders are being placed, stop
// the victim (SIGKILL, or SIGTERM when graceful: then it must drain and exit
// 0) and start it again.
func killWhilePlacing(t *testing.T, sys *harness.System, victim string, graceful bool, reqs []harness.OrderRequest) []harness.Order {
	t.Helper()
	ctx := timeout(t, 2*time.Minute)
	// The placing goroutine belongs to this call: it never touches t (a
	// t.Fatal below ends the test while it runs, and a t.Errorf after
	// that panics and takes the whole e2e binary down), it reports over
	// placed instead, and every way out of this function, t.Fatal
	// included, cancels it and waits until it has returned.
	placeCtx, stopPlacing := context.WithCancel(ctx)
	type result struct {
		orders []harness.Order
		err    error
	}
	placed := make(chan result, 1) // buffered: the send never blocks
	done := make(chan struct{})
	go func() {
		defer close(done)
		out := make([]harness.Order, 0, len(reqs))
		for i, req := range reqs {
			o, err := sys.Client().PlaceOrder(placeCtx, req)
			if err != nil {
				placed <- result{out, fmt.Errorf("place order %d: %w", i, err)}
				return
			}
			out = append(out, o)
			select {
			case <-placeCtx.Done():
				placed <- result{out, fmt.Errorf("placed %d of %d orders: %w", len(out), len(reqs), placeCtx.Err())}
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		placed <- result{out, nil}
	}()
	defer func() {
		stopPlacing()
		<-done
	}()

	time.Sleep(150 * time.Millisecond)
	p := sys.Service(victim)
	stop := p.Kill
	if graceful {
		stop = func() error { return p.Term(20 * time.Second) }
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-placed
	if r.err != nil {
		t.Fatalf("place orders while %s restarts (graceful %v): %v", victim, graceful, r.err)
	}
	return r.orders
}

// Scenario 7. SIGKILL each service in turn while orders are in flight and
// start it again: every order terminal, none lost, no effect applied twice.
// Then the same with SIGTERM: each service stops cleanly (exit 0).
func TestKillEachService(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		sys := start(t, queueURL, harness.Config{
			// Every handler takes a moment, so messages are in flight when
			// the kill comes.
			Env: map[string]string{"HANDLER_LATENCY": "10ms"},
		})
		var all []string
		for _, graceful := range []bool{false, true} {
			for i, victim := range []string{harness.InventoryService, harness.PaymentService, harness.ShippingService, harness.OrderService} {
				orders := killWhilePlacing(t, sys, victim, graceful, orderMix(10, uint64(70+i), "SKU-1", "SKU-2", "SKU-3", "SKU-4"))
				all = append(all, ids(orders)...)
			}
		}
		final := waitTerminal(t, sys, 90*time.Second, all...)
		if got := statuses(final); got[harness.StatusCompleted] != len(all) {
			t.Errorf("statuses: got %v, want all %d COMPLETED (no timeout should fire)", got, len(all))
		}
		sys.CheckInvariants(t, harness.Expect{Orders: len(all)})
		checkNoDuplicateEvents(t, sys, all)
		for _, name := range harness.Services {
			if got := sys.Service(name).Starts(); got != 3 {
				t.Errorf("%s started %d times, want 3", name, got)
			}
		}
	})
}

// crashRound sets a crash-point flag on a service, places orders until the
// service exits with status 3 (the crash point's), starts it again and
// waits for the orders.
func crashRound(t *testing.T, sys *harness.System, service, flag string, seed uint64) []string {
	t.Helper()
	ctx := timeout(t, 2*time.Minute)
	p := sys.Service(service)
	if err := sys.Client().SetFault(ctx, service, flag, true); err != nil {
		t.Fatal(err)
	}
	// Placed in the background: the order service itself may be the one
	// that crashes, and the client waits for it to come back.
	type result struct {
		orders []harness.Order
		err    error
	}
	placed := make(chan result, 1)
	go func() {
		o, err := place(ctx, sys, orderMix(2, seed, "SKU-1", "SKU-3"))
		placed <- result{o, err}
	}()
	code, err := p.WaitExit(30 * time.Second)
	if err != nil {
		t.Fatalf("%s with %s: %v", service, flag, err)
	}
	if code != 3 {
		t.Fatalf("%s with %s: exited with %d, want 3 (the crash point)", service, flag, code)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-placed
	if r.err != nil {
		t.Fatal(r.err)
	}
	waitTerminal(t, sys, 60*time.Second, ids(r.orders)...)
	return ids(r.orders)
}

// duplicatesDropped waits (up to 20s) until the service's inbox has
// dropped at least one redelivered command since the process started (its
// orderflow.messages.handled counter with outcome "duplicate"), and returns
// the count. The redelivery comes when the crashed consumer's lease
// expires, possibly after the orders have finished.
func duplicatesDropped(t *testing.T, sys *harness.System, service string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		text, err := sys.Client().Metrics(ctx, service)
		if err != nil {
			return 0
		}
		if n := harness.MessagesHandled(text, "duplicate"); n > 0 {
			return n
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Scenario 8. Each service crashes right after a handler's local commit,
// before the ack (and, second round, in the middle of a handler, before
// its commit): the message is redelivered to the restarted process, whose
// inbox drops it (after a commit) or which handles it once (no commit).
// No charge, reservation or shipment is ever doubled.
func TestCrashAfterCommit(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		sys := start(t, queueURL, harness.Config{})
		var all []string
		for i, service := range harness.Services {
			all = append(all, crashRound(t, sys, service, "crash_after_commit", uint64(80+i))...)
			if service != harness.OrderService {
				if n := duplicatesDropped(t, sys, service); n < 1 {
					t.Errorf("%s: the inbox dropped %d redelivered commands after the crash, want at least 1", service, n)
				}
			}
			all = append(all, crashRound(t, sys, service, "crash_mid_handler", uint64(90+i))...)
		}
		final := waitTerminal(t, sys, time.Minute, all...)
		if got := statuses(final); got[harness.StatusCompleted] != len(all) {
			t.Errorf("statuses: got %v, want all %d COMPLETED", got, len(all))
		}
		sys.CheckInvariants(t, harness.Expect{Orders: len(all)})
		checkNoDuplicateEvents(t, sys, all)
	})
}
