package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
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
		sys := start(t, queueURL, harness.Config{
			Catalog:     chaosCatalog(plan.orders),
			StepTimeout: plan.step,
			ServiceEnv: map[string]map[string]string{
				harness.PaymentService:  {"PAYMENT_DECLINE_RATE": "0.05"},
				harness.ShippingService: {"SHIPPING_FAILURE_RATE": "0.05"},
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
		// (409 once it has completed or been rejected).
		reqs := orderMix(plan.orders, 12, "SKU-1", "SKU-2", "SKU-3", "SKU-4", "SKU-5")
		placed := make([]string, len(reqs))
		var failed, cancels atomic.Int32
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
				if i%10 == 5 {
					time.Sleep(time.Duration(i%7) * 5 * time.Millisecond)
					_, err := sys.Client().CancelOrder(ctx, o.ID, "customer changed their mind")
					if st := harness.StatusOf(err); err != nil && st != 409 {
						if failed.Add(1) <= 5 {
							t.Errorf("cancel order %d: %v", i, err)
						}
					} else if err == nil {
						cancels.Add(1)
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
		snap := sys.CheckInvariants(t, harness.Expect{Orders: len(reqs), Deadline: plan.deadline, Quiet: 2 * time.Minute})
		known := map[string]bool{}
		for _, o := range snap.Orders {
			known[o.ID] = true
		}
		for i, id := range placed {
			if !known[id] {
				t.Errorf("order %d (%s) was acknowledged but is missing", i, id)
			}
		}
		checkNoDuplicateEvents(t, sys, placed)
		total := 0
		for _, n := range kills {
			total += n
		}
		if total == 0 {
			t.Errorf("the chaos loop killed nothing during %s of load", loadTime)
		}
		t.Logf("chaos: %d orders (%d cancelled by the customer in flight) in %s (%.0f/s) with %d kills %v; all terminal after %s: %v",
			len(reqs), cancels.Load(), loadTime.Round(time.Millisecond), float64(len(reqs))/loadTime.Seconds(), total, kills,
			allTerminal.Round(time.Millisecond), counts)
	})
}
