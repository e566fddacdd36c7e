package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// holdInHandler is the handler latency a victim of scenario 7 gets before
// the orders of its SIGKILL round are placed: every message of the round it
// starts stays in its handler until the kill, so the kill certainly finds
// some in flight. The restarted process reads HANDLER_LATENCY from its
// environment again.
const holdInHandler = time.Minute

// killRound is what killWhilePlacing did.
type killRound struct {
	orders []harness.Order
	// restarted is when the victim was started again.
	restarted time.Time
	// held is how many messages the SIGKILLed victim's consumer group had
	// in flight right after the kill (0 for a SIGTERM).
	held int64
}

// killWhilePlacing is scenario 7's load: while orders are being placed, stop
// the victim (SIGKILL, or SIGTERM when graceful: then it must drain and exit
// 0) and start it again. A SIGKILL comes while the victim holds messages
// (holdInHandler), and the queue must show them in flight, held by the
// dead process, right after it: they can only be delivered again.
func killWhilePlacing(t *testing.T, sys *harness.System, victim string, graceful bool, reqs []harness.OrderRequest) killRound {
	t.Helper()
	ctx := timeout(t, 2*time.Minute)
	if !graceful {
		if err := sys.Client().SetFault(ctx, victim, "handler_latency", holdInHandler.String()); err != nil {
			t.Fatal(err)
		}
	}
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
	via := harness.OrderService // a service that stays up, to read the queue's statistics
	if victim == harness.OrderService {
		via = harness.InventoryService
	}
	var round killRound
	stop := p.Kill
	if graceful {
		stop = func() error { return p.Term(20 * time.Second) }
	} else if _, err := waitHeld(ctx, sys, via, victim, func(n int64) bool { return n > 0 }); err != nil {
		// Handlers started before the flag (HANDLER_LATENCY) are done by now:
		// what is in flight now is held until the kill.
		t.Fatalf("waiting for %s to hold a message: %v", victim, err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !graceful {
		n, err := waitHeld(ctx, sys, via, victim, func(int64) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		if round.held = n; n == 0 {
			t.Errorf("%s SIGKILLed: its consumer group has nothing in flight or abandoned right after, want the messages it held (nothing is delivered again)", victim)
		}
	}
	time.Sleep(300 * time.Millisecond)
	round.restarted = time.Now()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-placed
	if r.err != nil {
		t.Fatalf("place orders while %s restarts (graceful %v): %v", victim, graceful, r.err)
	}
	round.orders = r.orders
	return round
}

// waitHeld polls the queue's statistics, as service via reads them, until
// ok accepts how many messages group holds (over every topic it consumes):
// in flight, or abandoned by a consumer that died (on PostgreSQL, as soon
// as its sessions end; on SQLite, once their leases run out). It returns
// that number.
func waitHeld(ctx context.Context, sys *harness.System, via, group string, ok func(int64) bool) (int64, error) {
	for {
		stats, err := sys.Client().QueueStatsVia(ctx, via)
		if err != nil {
			return 0, err
		}
		var n int64
		for _, topic := range stats {
			for _, g := range topic.Groups {
				if g.ConsumerGroup == group {
					n += g.InFlight + g.Abandoned
				}
			}
		}
		if ok(n) {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return n, fmt.Errorf("%s holds %d messages: %w", group, n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// redelivered returns the CONSUMER spans of service that handled a message
// delivered before (messaging.delivery.attempt > 1) and started after from.
func redelivered(sys *harness.System, service string, from time.Time) []harness.Span {
	return sys.Receiver().Spans(func(s harness.Span) bool {
		attempt, err := strconv.Atoi(s.Attrs["messaging.delivery.attempt"])
		return s.Service == service && s.Kind == "CONSUMER" && strings.HasPrefix(s.Name, "process ") &&
			err == nil && attempt > 1 && !s.Start.Before(from)
	})
}

// Scenario 7. SIGKILL each service in turn while it holds messages and
// orders are being placed, and start it again: the messages it held are
// delivered again to the new process; every order terminal, none lost, no
// effect applied twice. Then the same with SIGTERM: each service stops
// cleanly (exit 0).
func TestKillEachService(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		sys := start(t, queueURL, harness.Config{
			// Every handler takes a moment, so messages are in flight while
			// orders are placed.
			Env: map[string]string{"HANDLER_LATENCY": "10ms"},
			// The spans show which deliveries were attempts > 1.
			Traces: true,
		})
		victims := []string{harness.InventoryService, harness.PaymentService, harness.ShippingService, harness.OrderService}
		var all []string
		killed := map[string]killRound{}
		for _, graceful := range []bool{false, true} {
			for i, victim := range victims {
				round := killWhilePlacing(t, sys, victim, graceful, orderMix(10, uint64(70+i), "SKU-1", "SKU-2", "SKU-3", "SKU-4"))
				all = append(all, ids(round.orders)...)
				if !graceful {
					killed[victim] = round
				}
			}
		}
		final := waitTerminal(t, sys, 90*time.Second, all...)
		if got := statuses(final); got[harness.StatusCompleted] != len(all) {
			t.Errorf("statuses: got %v, want all %d COMPLETED (no timeout should fire)", got, len(all))
		}
		sys.CheckInvariants(t, harness.Expect{Orders: len(all), IDs: all})
		for _, name := range harness.Services {
			if got := sys.Service(name).Starts(); got != 3 {
				t.Errorf("%s started %d times, want 3", name, got)
			}
		}
		// What each SIGKILLed victim held was delivered again to a process
		// started after the kill: a span of an attempt > 1. (The one
		// started at once, or, on SQLite, where the lease of what the
		// killed one held can outlast it, the one started after its
		// SIGTERM; a SIGTERM itself gives back nothing with an attempt
		// counted.) The killed process exported none of the spans it had
		// open. The orders are terminal and the queue drained, so the
		// spans are on their way (every 100 ms).
		deadline := time.Now().Add(30 * time.Second)
		for _, victim := range victims {
			k := killed[victim]
			var spans []harness.Span
			for {
				if spans = redelivered(sys, victim, k.restarted); len(spans) > 0 || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if len(spans) == 0 {
				t.Errorf("%s held %d messages when SIGKILLed, but no span shows one delivered again (attempt > 1) after the kill", victim, k.held)
				continue
			}
			t.Logf("%s: %d messages in flight at the SIGKILL; %d delivered again, first %s (attempt %s)",
				victim, k.held, len(spans), spans[0].Name, spans[0].Attrs["messaging.delivery.attempt"])
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
	crashSpans := func() int {
		return len(sys.Receiver().Spans(func(s harness.Span) bool {
			return s.Service == service && s.Error && s.HasEvent("crash point")
		}))
	}
	before := crashSpans()
	placing := placeInBackground(ctx, sys, orderMix(2, seed, "SKU-1", "SKU-3"))
	code, err := p.WaitExit(30 * time.Second)
	if err != nil {
		t.Fatalf("%s with %s: %v", service, flag, err)
	}
	if code != 3 {
		t.Fatalf("%s with %s: exited with %d, want 3 (the crash point)", service, flag, code)
	}
	// The crashed attempt is in its trace: the crash point ends its span,
	// as failed, before the flush that precedes the exit.
	if crashSpans() <= before {
		t.Errorf("%s with %s: no new span with a crash point event, want the crashed attempt's", service, flag)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-placing
	if r.err != nil {
		t.Fatal(r.err)
	}
	waitTerminal(t, sys, 60*time.Second, ids(r.orders)...)
	return ids(r.orders)
}

// waitHandled polls the service's orderflow.messages.handled counter (since
// its process started) until done accepts its "ok" and "duplicate" counts,
// or d passes, and returns them. The counts are read from /metrics: a
// failure to read them fails the test.
func waitHandled(t *testing.T, sys *harness.System, service string, d time.Duration, done func(ok, dup int) bool) (ok, dup int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	read := false
	for {
		text, err := sys.Client().Metrics(ctx, service)
		switch {
		case err != nil && read && ctx.Err() != nil:
			return ok, dup // waited d
		case err != nil:
			t.Fatalf("metrics of %s: %v", service, err)
		}
		read = true
		ok, dup = harness.MessagesHandled(text, "ok"), harness.MessagesHandled(text, "duplicate")
		if done(ok, dup) {
			return ok, dup
		}
		select {
		case <-ctx.Done():
			return ok, dup
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitDrained waits until group has nothing left on any topic (depth 0):
// the messages of a crash round, delivered again, are all handled.
func waitDrained(t *testing.T, sys *harness.System, group string) {
	t.Helper()
	ctx := timeout(t, 30*time.Second)
	for {
		stats, err := sys.Client().QueueStats(ctx)
		if err != nil {
			t.Fatalf("waiting for %s to drain: %v", group, err)
		}
		left := 0
		for _, topic := range stats {
			for _, g := range topic.Groups {
				if g.ConsumerGroup == group {
					left += int(g.Depth)
				}
			}
		}
		if left == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s still has %d messages to handle after 30s", group, left)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Scenario 8. Each service crashes right after a handler's local commit,
// before the ack (and, second round, in the middle of a handler, before
// its commit): the message is redelivered to the restarted process, whose
// inbox drops it (after a commit) or which handles it once (no commit).
// No charge, reservation or shipment is ever doubled.
//
// The two rounds are told apart by the restarted process's
// orderflow.messages.handled counter (each of the four has one): after crash_after_commit it drops at least
// one duplicate; after crash_mid_handler, which no handler gets past once
// set, it handles both orders' commands itself (outcome "ok", at least 2)
// and drops none. Each crash leaves the crashed attempt's span, failed
// with a crash point event, in the traces.
func TestCrashAfterCommit(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		sys := start(t, queueURL, harness.Config{Traces: true}) // the crashed attempts' spans
		var all []string
		for i, service := range harness.Services {
			all = append(all, crashRound(t, sys, service, "crash_after_commit", uint64(80+i))...)
			// The redelivery comes when the crashed consumer's lease
			// expires, possibly after the orders have finished.
			if _, dup := waitHandled(t, sys, service, 20*time.Second, func(_, dup int) bool { return dup > 0 }); dup < 1 {
				t.Errorf("%s: the inbox dropped %d redelivered messages after crash_after_commit, want at least 1", service, dup)
			}
			// Nothing of this round is left for the next one to see.
			waitDrained(t, sys, service)
			orders := crashRound(t, sys, service, "crash_mid_handler", uint64(90+i))
			all = append(all, orders...)
			// Each order of the round has one command for each of
			// inventory, payment and shipping, and three replies for order.
			ok, dup := waitHandled(t, sys, service, 20*time.Second, func(ok, _ int) bool { return ok >= len(orders) })
			if ok < len(orders) || dup != 0 {
				t.Errorf("%s after crash_mid_handler: %d messages handled, %d dropped as duplicates; want at least the %d orders' of the round handled (nothing was committed before the crash) and none dropped",
					service, ok, dup, len(orders))
			}
		}
		final := waitTerminal(t, sys, time.Minute, all...)
		if got := statuses(final); got[harness.StatusCompleted] != len(all) {
			t.Errorf("statuses: got %v, want all %d COMPLETED", got, len(all))
		}
		snap := sys.CheckInvariants(t, harness.Expect{Orders: len(all), IDs: all})
		// The crashes of payment and shipping came after they called their
		// provider (before and after their local commit), so the
		// redeliveries called it again: the invariants above hold with
		// repeated calls, not for want of them.
		for name, recs := range map[string][]harness.ProviderRecord{"gateway": snap.Gateway, "carrier": snap.Carrier} {
			if repeated := slices.IndexFunc(recs, func(r harness.ProviderRecord) bool { return r.Requests > 1 }); repeated < 0 {
				t.Errorf("%s: no order was requested twice (%d records), want the redelivered commands to have called it again", name, len(recs))
			}
		}
	})
}
