package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// chaosPlan is the size of scenario 12: the CI run by default, a soak with
// E2E_SOAK=1 (E2E_ORDERS, E2E_RATE and E2E_DURATION tune either).
type chaosPlan struct {
	orders   int           // orders to place
	rate     float64       // orders placed per second
	interval time.Duration // mean time between two kills
	deadline time.Duration // bound of every order's placement → terminal time
	step     time.Duration // the order service's step timeout; 0 = the harness default
}

// soakDuration is how long the soak places orders (Taskfile.yml's e2e:soak:
// 5 min at 100 orders/s) unless E2E_DURATION says otherwise.
const soakDuration = 5 * time.Minute

// planChaos sizes scenario 12 from the environment (getenv): E2E_SOAK,
// then E2E_RATE, E2E_DURATION, E2E_STEP_TIMEOUT and E2E_ORDERS. The soak
// and E2E_DURATION fix how long orders are placed, so the count follows
// from the rate, whatever E2E_RATE says; E2E_ORDERS fixes the count itself.
func planChaos(getenv func(string) string) (chaosPlan, error) {
	p := chaosPlan{orders: 1000, rate: 100, interval: 1500 * time.Millisecond, deadline: 60 * time.Second}
	var placing time.Duration // 0: p.orders, however long they take at p.rate
	if getenv("E2E_SOAK") != "" {
		placing = soakDuration
	}
	if v := getenv("E2E_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 || math.IsInf(r, 0) {
			return p, fmt.Errorf("E2E_RATE=%q: want a positive number of orders per second", v)
		}
		p.rate = r
	}
	if v := getenv("E2E_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("E2E_DURATION=%q: want a positive duration", v)
		}
		placing = d
	}
	if placing > 0 {
		p.orders = max(1, int(p.rate*placing.Seconds()))
	}
	if v := getenv("E2E_STEP_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("E2E_STEP_TIMEOUT=%q: want a positive duration", v)
		}
		p.step = d
	}
	if v := getenv("E2E_ORDERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, fmt.Errorf("E2E_ORDERS=%q: want a positive number", v)
		}
		p.orders = n
	}
	return p, nil
}

func TestPlanChaos(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		wantOrders int
		wantRate   float64
		wantStep   time.Duration
		wantErr    bool
	}{
		{"CI default", nil, 1000, 100, 0, false},
		{"CI, faster", map[string]string{"E2E_RATE": "200"}, 1000, 200, 0, false},
		{"soak: 5 min at 100/s", map[string]string{"E2E_SOAK": "1"}, 30000, 100, 0, false},
		{"soak at 50/s still lasts 5 min", map[string]string{"E2E_SOAK": "1", "E2E_RATE": "50"}, 15000, 50, 0, false},
		{"soak at 200/s still lasts 5 min", map[string]string{"E2E_SOAK": "1", "E2E_RATE": "200"}, 60000, 200, 0, false},
		{"soak of 1 min", map[string]string{"E2E_SOAK": "1", "E2E_DURATION": "1m"}, 6000, 100, 0, false},
		{"duration and rate", map[string]string{"E2E_DURATION": "30s", "E2E_RATE": "10"}, 300, 10, 0, false},
		{"the count wins", map[string]string{"E2E_SOAK": "1", "E2E_RATE": "50", "E2E_ORDERS": "77"}, 77, 50, 0, false},
		{"step timeout", map[string]string{"E2E_STEP_TIMEOUT": "4s"}, 1000, 100, 4 * time.Second, false},
		{"bad rate", map[string]string{"E2E_RATE": "0"}, 0, 0, 0, true},
		{"bad duration", map[string]string{"E2E_DURATION": "-1s"}, 0, 0, 0, true},
		{"bad count", map[string]string{"E2E_ORDERS": "many"}, 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := planChaos(func(k string) string { return tt.env[k] })
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got plan %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got.orders != tt.wantOrders || got.rate != tt.wantRate || got.step != tt.wantStep {
				t.Errorf("got %d orders at %g/s, step %v; want %d at %g/s, step %v",
					got.orders, got.rate, got.step, tt.wantOrders, tt.wantRate, tt.wantStep)
			}
		})
	}
}

// The CI run of scenario 12 is large enough that chance cannot leave it
// without a CANCELLED or a REJECTED order (below chaosMaxOdds); a small
// run could, and chaosOdds says so.
func TestChaosOdds(t *testing.T) {
	plan, err := planChaos(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	reqs := orderMix(plan.orders, 12, "SKU-1", "SKU-2", "SKU-3", "SKU-4", chaosScarceSKU)
	noCancelled, noRejected := chaosOdds(reqs, chaosCatalog(plan.orders), chaosScarceSKU, chaosDeclineRate, chaosShipFailureRate)
	if noCancelled > chaosMaxOdds || noRejected > chaosMaxOdds {
		t.Errorf("CI plan of %d orders: P(no CANCELLED) <= %.3g, P(no REJECTED) <= %.3g; want both below %g",
			plan.orders, noCancelled, noRejected, chaosMaxOdds)
	}
	t.Logf("CI plan of %d orders: P(no CANCELLED) <= %.3g, P(no REJECTED) <= %.3g", plan.orders, noCancelled, noRejected)

	// 100 orders: 10 cancelled by their customer, 61 others without the
	// scarce SKU, none of them declined with probability 0.95^61 = 0.04;
	// the 29 others ask 8 units more than the stock, which 1 to 8 of
	// them declined or refused free with probability about 0.28.
	small := orderMix(100, 12, "SKU-1", "SKU-2", "SKU-3", "SKU-4", chaosScarceSKU)
	noCancelled, noRejected = chaosOdds(small, chaosCatalog(100), chaosScarceSKU, chaosDeclineRate, chaosShipFailureRate)
	if noCancelled < 0.01 || noRejected < chaosMaxOdds {
		t.Errorf("100 orders: P(no CANCELLED) <= %.3g, P(no REJECTED) <= %.3g; want both bounds well above %g (too few orders to be sure)",
			noCancelled, noRejected, chaosMaxOdds)
	}
	// Without a decline or a refusal, only the customers cancel (nothing
	// is certain), and the orders left alone ask more of the scarce SKU
	// than its stock (rejections are).
	if nc, nr := chaosOdds(reqs, chaosCatalog(plan.orders), chaosScarceSKU, 0, 0); nc != 1 || nr != 0 {
		t.Errorf("no faults: got bounds %g and %g, want 1 and 0", nc, nr)
	}
	// A catalogue without the scarce SKU: nothing can be rejected.
	if _, nr := chaosOdds(reqs, chaosCatalog(plan.orders)[:4], chaosScarceSKU, chaosDeclineRate, chaosShipFailureRate); nr != 1 {
		t.Errorf("no scarce SKU: got bound %g, want 1", nr)
	}
}

// The faults of scenario 12: the share of charges payment declines and of
// shipments the carrier refuses, each drawn anew (math/rand) for every
// charge and every shipment; and the scarce SKU of chaosCatalog.
const (
	chaosDeclineRate     = 0.05
	chaosShipFailureRate = 0.05
	chaosScarceSKU       = "SKU-5"
	// chaosCancelReason is what the customer gives when cancelling.
	chaosCancelReason = "customer changed their mind"
	// chaosMaxOdds bounds the probability that chance alone leaves a run
	// without a CANCELLED or without a REJECTED order (see chaosOdds).
	chaosMaxOdds = 1e-6
)

// cancelledByCustomer says whether the customer of the i-th order of
// scenario 12 cancels it right after placing it: every tenth order.
func cancelledByCustomer(i int) bool { return i%10 == 5 }

// chaosOdds bounds the probabilities that a chaos run of reqs on catalog
// ends with no CANCELLED order (noCancelled) or with no REJECTED order
// (noRejected) by chance, when payment declines each charge with
// probability decline and the carrier refuses each shipment with
// probability fail, independently, and no step times out (the default
// step timeout is 30 s). The orders cancelled by their customer are
// counted as cancelled whatever happens to them, so they help neither
// bound.
//
// noCancelled: an order without the scarce SKU (stock for every order)
// that its customer leaves alone is charged, and declined with probability
// decline; none of M such orders is declined with probability
// (1-decline)^M.
//
// noRejected: if no order is REJECTED, every order with the scarce SKU got
// its units reserved; the COMPLETED ones still hold them, at most the
// scarce SKU's initial stock S (nothing is restocked). So the orders that
// did not complete, customers' cancellations aside, hold back at least
// R = D - A - S units, where D is what all orders ask of the SKU and A
// what the customer-cancelled ones ask. Each of those orders ends
// CANCELLED (declined or refused) with probability
// pc = 1-(1-decline)(1-fail); noRejected is the probability that the
// cancelled ones' units add up to R or more (an exact distribution over
// the orders' quantities, capped at R).
func chaosOdds(reqs []harness.OrderRequest, catalog []harness.Product, scarce string, decline, fail float64) (noCancelled, noRejected float64) {
	stock := -1
	for _, p := range catalog {
		if p.SKU == scarce {
			stock = p.InitialStock
		}
	}
	if stock < 0 {
		return 1, 1
	}
	plain := 0                // orders without the scarce SKU, left alone
	var weights []int         // the scarce units of the other orders left alone
	demand, cancelled := 0, 0 // D and A
	for i, req := range reqs {
		units := 0
		for _, it := range req.Items {
			if it.SKU == scarce {
				units += it.Quantity
			}
		}
		demand += units
		switch {
		case cancelledByCustomer(i):
			cancelled += units
		case units == 0:
			plain++
		default:
			weights = append(weights, units)
		}
	}
	noCancelled = math.Pow(1-decline, float64(plain))
	r := demand - cancelled - stock
	if r <= 0 {
		return noCancelled, 1
	}
	pc := 1 - (1-decline)*(1-fail)
	dist := make([]float64, r+1) // dist[k]: P(cancelled units = k), dist[r]: P(>= r)
	dist[0] = 1
	for _, w := range weights {
		next := make([]float64, r+1)
		for k, p := range dist {
			next[k] += p * (1 - pc)
			next[min(r, k+w)] += p * pc
		}
		dist = next
	}
	return noCancelled, dist[r]
}

// chaosCatalog has stock for every order but one scarce SKU, which runs out
// part-way, so that some orders are rejected under contention.
func chaosCatalog(orders int) []harness.Product {
	return []harness.Product{
		{SKU: "SKU-1", Name: "Espresso beans, 1 kg", UnitPriceCents: 1500, InitialStock: 10 * orders},
		{SKU: "SKU-2", Name: "Burr grinder", UnitPriceCents: 8999, InitialStock: 10 * orders},
		{SKU: "SKU-3", Name: "Milk jug, 350 ml", UnitPriceCents: 1299, InitialStock: 10 * orders},
		{SKU: "SKU-4", Name: "Tamper, 58 mm", UnitPriceCents: 2499, InitialStock: 10 * orders},
		{SKU: "SKU-5", Name: "Limited-edition cup", UnitPriceCents: 1999, InitialStock: orders / 2},
	}
}

// Scenario 12. Chaos: a load of orders while a chaos loop SIGKILLs a random
// service every few seconds and starts it again; payments are declined,
// shipments fail and customers cancel now and then, so compensations run
// under chaos too.
// Every order must be terminal within the deadline, none lost, none charged
// twice, stock conserved; no message dead-lettered.
func TestChaos(t *testing.T) {
	onQueues(t, bothQueues, func(t *testing.T, queueURL string) {
		plan, err := planChaos(os.Getenv)
		if err != nil {
			t.Fatal(err)
		}
		// Chance must not be able to leave the run without a CANCELLED or a
		// REJECTED order: the checks below want both.
		reqs := orderMix(plan.orders, 12, "SKU-1", "SKU-2", "SKU-3", "SKU-4", chaosScarceSKU)
		catalog := chaosCatalog(plan.orders)
		noCancelled, noRejected := chaosOdds(reqs, catalog, chaosScarceSKU, chaosDeclineRate, chaosShipFailureRate)
		if noCancelled > chaosMaxOdds || noRejected > chaosMaxOdds {
			t.Fatalf("%d orders are too few: a run ends without a CANCELLED order with probability up to %.3g, without a REJECTED one up to %.3g; want both below %g",
				plan.orders, noCancelled, noRejected, chaosMaxOdds)
		}
		rate := func(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) }
		sys := start(t, queueURL, harness.Config{
			Catalog:     catalog,
			StepTimeout: plan.step,
			ServiceEnv: map[string]map[string]string{
				harness.PaymentService:  {"PAYMENT_DECLINE_RATE": rate(chaosDeclineRate)},
				harness.ShippingService: {"SHIPPING_FAILURE_RATE": rate(chaosShipFailureRate)},
			},
		})
		began := time.Now()
		ctx := timeout(t, plan.deadline+time.Duration(float64(plan.orders)/plan.rate*float64(time.Second))+2*time.Minute)

		// The chaos loop runs while orders are being placed.
		chaosCtx, stopChaos := context.WithCancel(ctx)
		kills := map[string]int{}
		var chaosDone sync.WaitGroup
		chaosDone.Go(func() {
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
			for {
				wait := plan.interval/2 + time.Duration(r.Int64N(int64(plan.interval)))
				select {
				case <-chaosCtx.Done():
					return
				case <-time.After(wait):
				}
				victim := harness.Services[r.IntN(len(harness.Services))]
				p := sys.Service(victim)
				if err := p.Kill(); err != nil {
					t.Errorf("chaos: %v", err)
					return
				}
				kills[victim]++
				time.Sleep(time.Duration(100+r.IntN(400)) * time.Millisecond)
				sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err := p.Start(sctx)
				cancel()
				if err != nil {
					t.Errorf("chaos: restart %s: %v", victim, err)
					return
				}
			}
		})

		// The load: orders at plan.rate, placed by up to 16 clients that
		// retry (same Idempotency-Key) while the order service is down;
		// every tenth order is cancelled by its customer a moment later
		// (409 once it has completed or been rejected). accepted[i] says
		// the i-th order's cancellation was accepted (answered CANCELLING,
		// or CANCELLED if it ended before the answer).
		placed := make([]string, len(reqs))
		accepted := make([]bool, len(reqs))
		var failed atomic.Int32
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		tick := time.Duration(float64(time.Second) / plan.rate)
		next := time.Now()
		for i, req := range reqs {
			time.Sleep(time.Until(next))
			next = next.Add(tick)
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				o, err := sys.Client().PlaceOrder(ctx, req)
				if err != nil {
					if failed.Add(1) <= 5 {
						t.Errorf("place order %d: %v", i, err)
					}
					return
				}
				placed[i] = o.ID
				if cancelledByCustomer(i) {
					time.Sleep(time.Duration(i%7) * 5 * time.Millisecond)
					v, err := sys.Client().CancelOrder(ctx, o.ID, chaosCancelReason)
					switch st := harness.StatusOf(err); {
					case err == nil && (v.Status == harness.StatusCancelling || v.Status == harness.StatusCancelled):
						accepted[i] = true
					case err == nil:
						if failed.Add(1) <= 5 {
							t.Errorf("cancel order %d: accepted with status %s, want CANCELLING (or CANCELLED)", i, v.Status)
						}
					case st != 409:
						if failed.Add(1) <= 5 {
							t.Errorf("cancel order %d: %v", i, err)
						}
					}
				}
			})
		}
		wg.Wait()
		loadTime := time.Since(began)
		stopChaos()
		chaosDone.Wait()
		if failed.Load() > 0 {
			t.Fatalf("%d orders could not be placed or cancelled", failed.Load())
		}
		if err := sys.StartAll(ctx); err != nil { // in case the loop stopped mid-kill
			t.Fatal(err)
		}

		counts, err := sys.Client().WaitAllTerminal(timeout(t, plan.deadline+time.Minute), int64(len(reqs)))
		if err != nil {
			t.Fatalf("after the chaos: %v", err)
		}
		allTerminal := time.Since(began)
		snap := sys.CheckInvariants(t, harness.Expect{Orders: len(reqs), IDs: placed, Deadline: plan.deadline, Quiet: 2 * time.Minute})

		// The customers' cancellations: each one accepted ends CANCELLED,
		// with every effect the order had undone (checkCancelledStream).
		finals := map[string]harness.Order{}
		for _, o := range snap.Orders {
			finals[o.ID] = o
		}
		var cancelled []int
		for i, ok := range accepted {
			if ok {
				cancelled = append(cancelled, i)
			}
		}
		byCustomer := 0 // the cancellations that stopped the order (not already cancelling)
		for _, i := range cancelled {
			id := placed[i]
			o := finals[id]
			if o.Status != harness.StatusCancelled {
				t.Errorf("order %d (%s): cancellation accepted, but it ended %s (%q), want CANCELLED", i, id, o.Status, o.Reason)
				continue
			}
			evs, err := sys.Client().Events(ctx, id)
			if err != nil {
				t.Fatalf("events of order %d: %v", i, err)
			}
			stopped, err := checkCancelledStream(evs, o, chaosCancelReason)
			if err != nil {
				t.Errorf("order %d (%s), cancelled by its customer: %v", i, id, err)
			}
			if stopped {
				byCustomer++
			}
		}
		// Every cancellation races a saga that needs six queue hops, three
		// of them through the order service that answers the cancellation
		// right after the placement: losing all of them to 409s would be a
		// fault in itself.
		if len(cancelled) == 0 {
			t.Errorf("no cancellation of the %d sent was accepted, want some: they come right after the placement", (len(reqs)+4)/10)
		}
		// Declines, refusals and the scarce SKU: see chaosOdds for why a
		// run without a CANCELLED or a REJECTED order is not chance. A step
		// timeout (E2E_STEP_TIMEOUT) may cancel what would have been
		// rejected, so the REJECTED count is only required with the
		// default 30 s steps.
		// The customers' cancellations end CANCELLED (checked above), so
		// only the other orders tell that declines and refusals happened.
		cancelledByCustomer := map[string]bool{}
		for _, i := range cancelled {
			cancelledByCustomer[placed[i]] = true
		}
		otherCancelled := 0
		for _, o := range snap.Orders {
			if o.Status == harness.StatusCancelled && !cancelledByCustomer[o.ID] {
				otherCancelled++
			}
		}
		if otherCancelled == 0 {
			t.Errorf("no order CANCELLED but by its customer (%v): with %g declines and %g shipping failures, P(none) <= %.3g", counts, chaosDeclineRate, chaosShipFailureRate, noCancelled)
		}
		if got := snap.CountStatus(harness.StatusRejected); got == 0 && plan.step == 0 {
			t.Errorf("no order REJECTED (%v): %s is scarce, P(none) <= %.3g", counts, chaosScarceSKU, noRejected)
		}
		total := 0
		for _, n := range kills {
			total += n
		}
		if total == 0 {
			t.Errorf("the chaos loop killed nothing during %s of load", loadTime)
		}
		t.Logf("chaos: %d orders (%d cancellations accepted, %d of them stopping the order) in %s (%.0f/s) with %d kills %v; all terminal after %s: %v",
			len(reqs), len(cancelled), byCustomer, loadTime.Round(time.Millisecond), float64(len(reqs))/loadTime.Seconds(), total, kills,
			allTerminal.Round(time.Millisecond), counts)
	})
}

// checkCancelledStream checks the event stream of an order that ended
// CANCELLED after its customer's cancellation was accepted. stopped says
// the cancellation is what stopped it (CancellationRequested): then the
// order keeps the customer's reason. Otherwise it was cancelling already
// (declined, refused, timed out) and the cancellation changed nothing.
// Either way every effect the stream records is undone: reserved stock
// released, a charge refunded, a scheduled shipment cancelled, each after
// a CompensationRequested naming its step. An order cancelled before its
// reservation failed has nothing to undo: no compensation at all.
func checkCancelledStream(evs []harness.Event, final harness.Order, reason string) (stopped bool, err error) {
	types := make([]string, len(evs))
	count := map[string]int{}
	asked := map[string]bool{} // steps named by a CompensationRequested
	for i, e := range evs {
		types[i] = e.Type
		count[e.Type]++
		if e.Type == "CompensationRequested" {
			var d struct {
				Steps []string `json:"steps"`
			}
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return false, fmt.Errorf("CompensationRequested at version %d: %v", e.Version, err)
			}
			for _, s := range d.Steps {
				asked[s] = true
			}
		}
	}
	stopped = count["CancellationRequested"] > 0
	var problems []string
	if stopped && final.Reason != reason {
		problems = append(problems, fmt.Sprintf("reason %q, want the customer's %q", final.Reason, reason))
	}
	if count["OrderCancelled"] != 1 {
		problems = append(problems, fmt.Sprintf("%d OrderCancelled, want 1", count["OrderCancelled"]))
	}
	for _, u := range []struct{ step, effect, undo string }{
		{"stock", "StockReserved", "StockReleased"},
		{"payment", "PaymentCharged", "PaymentRefunded"},
		{"shipment", "ShipmentScheduled", "ShipmentCancelled"},
	} {
		if count[u.effect] > 0 && (count[u.undo] == 0 || !asked[u.step]) {
			problems = append(problems, fmt.Sprintf("%s recorded but not undone (%s compensation asked: %v, %s: %d)",
				u.effect, u.step, asked[u.step], u.undo, count[u.undo]))
		}
	}
	if len(problems) > 0 {
		return stopped, fmt.Errorf("%s; events %v", strings.Join(problems, "; "), types)
	}
	return stopped, nil
}
