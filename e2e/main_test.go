// Package e2e proves, with the four real service binaries running as
// separate OS processes, that orderflow keeps its promises: the scenarios
// of docs/e2e.md, each ending with the invariants of docs/design.md §4, on the
// SQLite queue and, when ORDERFLOW_TEST_POSTGRES_URL is set, on PostgreSQL.
package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if d := harness.BuildDuration(); d > 0 && testing.Verbose() {
		fmt.Printf("e2e: service binaries built in %s\n", d.Round(time.Millisecond))
	}
	harness.CleanupBuild()
	os.Exit(code)
}

// queue is one shared-queue backend a scenario runs on.
type queue struct {
	name string
	// url returns the queue URL for a new system ("" = SQLite in the
	// system's directory), skipping or failing t as the backend requires.
	url func(t *testing.T) string
}

var (
	sqliteQueue   = queue{"sqlite", func(*testing.T) string { return "" }}
	postgresQueue = queue{"postgres", func(t *testing.T) string { return harness.PostgresQueueURL(t) }}
	bothQueues    = []queue{sqliteQueue, postgresQueue}
)

// onQueues runs scenario once per backend, as subtests named after them.
func onQueues(t *testing.T, queues []queue, scenario func(t *testing.T, queueURL string)) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end scenarios start four processes; skipped with -short")
	}
	for _, q := range queues {
		t.Run(q.name, func(t *testing.T) {
			start := time.Now()
			scenario(t, q.url(t))
			t.Logf("%s on %s: %s", t.Name(), q.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// start builds the binaries (once) and starts a system on queueURL.
func start(t *testing.T, queueURL string, cfg harness.Config) *harness.System {
	t.Helper()
	cfg.QueueURL = queueURL
	return harness.Start(t, harness.MustBuild(t), cfg)
}

// timeout returns a context ending after d, cancelled with the test.
func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// orderMix returns n order requests over the SKUs, one to three lines of
// one to three units each, deterministic for a seed.
func orderMix(n int, seed uint64, skus ...string) []harness.OrderRequest {
	r := rand.New(rand.NewPCG(seed, 42))
	reqs := make([]harness.OrderRequest, n)
	for i := range reqs {
		lines := 1 + r.IntN(min(3, len(skus)))
		perm := r.Perm(len(skus))
		var items []harness.Item
		for _, k := range perm[:lines] {
			items = append(items, harness.Item{SKU: skus[k], Quantity: 1 + r.IntN(3)})
		}
		reqs[i] = harness.OrderRequest{
			CustomerID: "c-" + strconv.Itoa(i),
			Items:      items,
			ShippingAddress: &harness.Address{
				Name: "Customer " + strconv.Itoa(i), Line1: strconv.Itoa(i+1) + " Loop Road",
				City: "Berlin", PostalCode: "10115", Country: "DE",
			},
		}
	}
	return reqs
}

// placeAll places the orders with a few concurrent clients and returns them
// in request order; it fails the test on the first refusal.
func placeAll(t *testing.T, ctx context.Context, sys *harness.System, reqs []harness.OrderRequest) []harness.Order {
	t.Helper()
	out, err := place(ctx, sys, reqs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// placement is what placeInBackground reports: the orders placed, or the
// first error.
type placement struct {
	orders []harness.Order
	err    error
}

// placeInBackground places reqs as place does, on a goroutine of its own,
// and reports on the channel it returns (buffered: the goroutine never
// blocks, and ends with ctx at the latest). For orders placed while the
// service that takes them may crash: the client waits for it to come back.
func placeInBackground(ctx context.Context, sys *harness.System, reqs []harness.OrderRequest) <-chan placement {
	placed := make(chan placement, 1)
	go func() {
		o, err := place(ctx, sys, reqs)
		placed <- placement{o, err}
	}()
	return placed
}

// place places the orders with four concurrent clients and returns them in
// request order, or the first error. Safe to call from any goroutine.
func place(ctx context.Context, sys *harness.System, reqs []harness.OrderRequest) ([]harness.Order, error) {
	out := make([]harness.Order, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, req := range reqs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = sys.Client().PlaceOrder(ctx, req)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("place order %d: %w", i, err)
		}
	}
	return out, nil
}

// ids returns the orders' ids.
func ids(orders []harness.Order) []string {
	out := make([]string, len(orders))
	for i, o := range orders {
		out[i] = o.ID
	}
	return out
}

// waitTerminal waits for the orders to be terminal and fails the test if
// they are not within d.
func waitTerminal(t *testing.T, sys *harness.System, d time.Duration, orders ...string) map[string]harness.Order {
	t.Helper()
	got, err := sys.Client().WaitTerminal(timeout(t, d), orders...)
	if err != nil {
		t.Fatalf("within %s: %v", d, err)
	}
	return got
}

// waitStatus waits until every order is in status; an order that ends
// (terminal) first fails the test.
func waitStatus(t *testing.T, sys *harness.System, d time.Duration, status string, orders ...string) {
	t.Helper()
	ctx := timeout(t, d)
	for _, id := range orders {
		for {
			o, err := sys.Client().GetOrder(ctx, id)
			if err != nil {
				t.Fatalf("order %s: %v", id, err)
			}
			if o.Status == status {
				break
			}
			if harness.Terminal(o.Status) {
				t.Fatalf("order %s: %s (%s) before reaching %s", id, o.Status, o.Reason, status)
			}
			select {
			case <-ctx.Done():
				t.Fatalf("order %s: still %s after %s, want %s", id, o.Status, d, status)
			case <-time.After(25 * time.Millisecond):
			}
		}
	}
}

// statuses counts the orders by status.
func statuses(orders map[string]harness.Order) map[string]int {
	m := map[string]int{}
	for _, o := range orders {
		m[o.Status]++
	}
	return m
}

// eventTypes returns the types of an order's events, in order.
func eventTypes(t *testing.T, sys *harness.System, id string) []string {
	t.Helper()
	evs, err := sys.Client().Events(timeout(t, 30*time.Second), id)
	if err != nil {
		t.Fatalf("events of %s: %v", id, err)
	}
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// stockBySKU indexes a snapshot's stock.
func stockBySKU(s harness.Snapshot) map[string]harness.Stock {
	m := map[string]harness.Stock{}
	for _, st := range s.Inventory.Stock {
		m[st.SKU] = st
	}
	return m
}

// paymentsByOrder indexes a snapshot's payments.
func paymentsByOrder(s harness.Snapshot) map[string]harness.Payment {
	m := map[string]harness.Payment{}
	for _, p := range s.Payments {
		m[p.OrderID] = p
	}
	return m
}

// shipmentsByOrder indexes a snapshot's shipments.
func shipmentsByOrder(s harness.Snapshot) map[string]harness.Shipment {
	m := map[string]harness.Shipment{}
	for _, sh := range s.Shipments {
		m[sh.OrderID] = sh
	}
	return m
}
