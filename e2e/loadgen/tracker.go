package loadgen

import (
	"context"
	"slices"
	"sync"
	"time"
)

// tracker knows every order this run placed that is not terminal yet, and
// the outcome of those that are.
//
// It finds terminal orders with few requests, whatever the rate: a round
// pages through GET /orders?status=S&placed_since=T (newest first, for
// each terminal status S, T the oldest order still pending), so one
// request covers up to 500 orders. When the pages it reads are mostly
// orders already known to be terminal (a few stuck orders hold the
// cut-off far back), the oldest pending orders are looked up one by one
// instead and the cut-off moves past them.
type tracker struct {
	client *Client
	cfg    trackerConfig

	mu      sync.Mutex
	pending map[string]pendingOrder // by id
	done    map[string]bool         // ids resolved, to drop late duplicates
	results []result
	waste   int // orders read in the last round that told nothing new
	reads   int // list and get requests, for the report
	// ordersRead counts the orders those requests returned.
	ordersRead int
}

type trackerConfig struct {
	PageSize      int           // orders per list request (the API's max is 500)
	StragglerAge  time.Duration // pending longer than this may be looked up one by one
	MaxIndividual int           // orders looked up one by one per round
	WasteLimit    int           // known orders read in a round before that happens
	GetParallel   int           // concurrent single-order lookups
}

func (c *trackerConfig) setDefaults() {
	if c.PageSize == 0 {
		c.PageSize = 500
	}
	if c.StragglerAge == 0 {
		c.StragglerAge = 5 * time.Second
	}
	if c.MaxIndividual == 0 {
		c.MaxIndividual = 50
	}
	if c.WasteLimit == 0 {
		c.WasteLimit = 4 * c.PageSize
	}
	if c.GetParallel == 0 {
		c.GetParallel = 8
	}
}

// result is one terminal order.
type result struct {
	ID       string
	Status   string
	Placed   time.Time // server's placed_at
	Finished time.Time // server's finished_at
}

func newTracker(c *Client, cfg trackerConfig) *tracker {
	cfg.setDefaults()
	return &tracker{client: c, cfg: cfg, pending: map[string]pendingOrder{}, done: map[string]bool{}}
}

// add records a placed order (terminal already, or pending).
func (t *tracker) add(o Order) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done[o.ID] {
		return
	}
	if IsTerminal(o.Status) {
		t.resolveLocked(o)
		return
	}
	added := time.Now()
	if p, ok := t.pending[o.ID]; ok {
		added = p.added
	}
	t.pending[o.ID] = pendingOrder{Order: o, added: added}
}

// pendingOrder is an order not known to be terminal yet, with the time it
// was added on this machine's clock (the server's placed_at may be skewed
// against it).
type pendingOrder struct {
	Order
	added time.Time
}

func (t *tracker) resolveLocked(o Order) {
	delete(t.pending, o.ID)
	t.done[o.ID] = true
	t.results = append(t.results, result{ID: o.ID, Status: o.Status, Placed: o.PlacedAt, Finished: o.finished()})
}

// counts returns how many orders are pending and how many ended in each
// terminal status.
func (t *tracker) counts() (pending int, byStatus map[string]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	byStatus = map[string]int{}
	for _, r := range t.results {
		byStatus[r.Status]++
	}
	return len(t.pending), byStatus
}

// pendingCount returns how many orders are pending.
func (t *tracker) pendingCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// oldestPendingAge returns how long ago the oldest pending order was
// added, by this machine's clock (0 when nothing is pending).
func (t *tracker) oldestPendingAge(now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var oldest time.Time
	for _, p := range t.pending {
		if oldest.IsZero() || p.added.Before(oldest) {
			oldest = p.added
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return max(now.Sub(oldest), 0)
}

// round looks for terminal orders once. It returns the number of orders
// still pending.
func (t *tracker) round(ctx context.Context, now time.Time) (int, error) {
	t.mu.Lock()
	if len(t.pending) == 0 {
		t.mu.Unlock()
		return 0, nil
	}
	sorted := make([]Order, 0, len(t.pending))
	for _, p := range t.pending {
		sorted = append(sorted, p.Order)
	}
	waste := t.waste
	t.mu.Unlock()
	slices.SortFunc(sorted, func(a, b Order) int { return a.PlacedAt.Compare(b.PlacedAt) })

	// Stuck orders held the last round's cut-off back: look the oldest up
	// one by one and scan only the rest.
	var single []Order
	if waste > t.cfg.WasteLimit {
		for _, o := range sorted {
			if len(single) == t.cfg.MaxIndividual || now.Sub(o.PlacedAt) < t.cfg.StragglerAge {
				break
			}
			single = append(single, o)
		}
	}
	newWaste := 0
	if len(single) < len(sorted) {
		cutoff := sorted[len(single)].PlacedAt
		n, err := t.scan(ctx, cutoff)
		if err != nil {
			return 0, err
		}
		newWaste = n
	}
	if err := t.lookup(ctx, single); err != nil {
		return 0, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.waste = newWaste
	return len(t.pending), nil
}

// scan pages through each terminal status back to cutoff and resolves the
// pending orders it meets. It returns how many orders it read that were
// not pending (already resolved, or another client's).
func (t *tracker) scan(ctx context.Context, cutoff time.Time) (int, error) {
	waste := 0
	for _, status := range TerminalStatuses {
		cursor := ""
		for {
			orders, next, err := t.client.List(ctx, status, cutoff, t.cfg.PageSize, cursor)
			if err != nil {
				return waste, err
			}
			reachedCutoff := false
			t.mu.Lock()
			t.reads++
			t.ordersRead += len(orders)
			for _, o := range orders {
				if o.PlacedAt.Before(cutoff) {
					reachedCutoff = true
					break
				}
				if _, ok := t.pending[o.ID]; ok {
					o.Status = status
					t.resolveLocked(o)
				} else {
					waste++
				}
			}
			t.mu.Unlock()
			if reachedCutoff || next == "" || len(orders) == 0 {
				break
			}
			cursor = next
		}
	}
	return waste, nil
}

// lookup fetches orders one by one, GetParallel at a time.
func (t *tracker) lookup(ctx context.Context, orders []Order) error {
	if len(orders) == 0 {
		return nil
	}
	sem := make(chan struct{}, t.cfg.GetParallel)
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	for _, o := range orders {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			got, err := t.client.Get(ctx, o.ID)
			t.mu.Lock()
			t.reads++
			if err == nil {
				t.ordersRead++
			}
			if err == nil && IsTerminal(got.Status) {
				if _, ok := t.pending[got.ID]; ok {
					t.resolveLocked(got)
				}
			}
			t.mu.Unlock()
			if err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	return firstErr
}
