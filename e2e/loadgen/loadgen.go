// Package loadgen places orders against orderflow's order API at a target
// rate or concurrency, waits until every order it placed is terminal and
// reports the outcome: how many orders completed, were cancelled or
// rejected, the throughput, and the latency from placement to the
// terminal state.
//
//	rep, err := loadgen.Run(ctx, loadgen.Config{
//		URL: "http://127.0.0.1:8080", Rate: 200, Duration: 30 * time.Second,
//	})
//	rep.WriteText(os.Stdout)
//
// Latency is measured on the server's clock: from the order's placed_at
// (the moment the order API accepted it) to its finished_at (the moment
// its saga ended), so it does not depend on how often loadgen looks. The
// round trip of POST /orders is reported beside it.
//
// The package depends on the standard library and pkg/catalog only; the
// loadgen command is a thin main around it, and e2ebench runs it as a
// library.
package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/pkg/catalog"
)

// Config says what load to offer. URL and one of Duration or Count are
// required; Rate, Concurrency or both choose the mode.
type Config struct {
	// URL is the order API, e.g. http://127.0.0.1:8080.
	URL string
	// Rate is the target of orders placed per second (open loop: sends
	// are due at fixed times whatever the server's latency). 0 means as
	// fast as Concurrency allows.
	Rate float64
	// Concurrency bounds the place requests in flight. With Rate 0 it is
	// the number of clients placing back to back (default 16); with a Rate
	// it only caps the requests in flight (default 512).
	Concurrency int
	// MaxPending, when set, holds placing back while this many placed
	// orders are not terminal yet: a closed loop on whole sagas, which
	// measures the throughput the system sustains without a backlog that
	// grows for the whole run. 0 means no limit.
	MaxPending int
	// Duration stops placing after this long; Count after this many
	// orders; whichever comes first when both are set.
	Duration time.Duration
	Count    int
	// Catalog supplies the SKUs ordered; default pkg/catalog.Default().
	Catalog catalog.Catalog
	// MaxLines and MaxQuantity bound the random order: 1..MaxLines
	// distinct SKUs, each 1..MaxQuantity units. Defaults 3 and 3.
	MaxLines    int
	MaxQuantity int
	// WaitTimeout bounds the wait for terminal states after the last
	// order is placed; orders still pending then are counted as timed out.
	// Default 60s.
	WaitTimeout time.Duration
	// PollInterval is how often terminal orders are looked for. Default
	// 200ms. Once the oldest pending order is older than ten intervals,
	// rounds come every tenth of its age instead (at most every
	// maxPollInterval): each round reads every order that ended since the
	// oldest pending one was placed, so at a fixed interval a saturated
	// system would serve more and more of these reads.
	PollInterval time.Duration
	// Seed makes the orders reproducible; 0 picks one.
	Seed uint64
	// RunID prefixes the idempotency keys and customer ids; default random.
	RunID string
	// Progress receives progress: one line rewritten in place when
	// ProgressTTY, plain lines every ProgressEvery (default 5s) otherwise.
	// Nil disables it.
	Progress      io.Writer
	ProgressTTY   bool
	ProgressEvery time.Duration
	// Client is the order API client; default NewClient(URL, Concurrency).
	Client *Client
	// MaxRetryAfter caps the wait a refusal's Retry-After asks for
	// (see Run). Default 5s: a server asking for more is still sent the
	// order again within the run, and a bad header does not stall it.
	MaxRetryAfter time.Duration
	// ReadyTimeout bounds the wait, before anything is placed, for the
	// order API's GET /readyz to answer 200: a system still starting gets
	// that long, and a wrong URL or a system not running fails the run at
	// once, saying so, instead of counting every order as a place error.
	// Default 10s; negative skips the wait.
	ReadyTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Concurrency == 0 {
		if c.Rate > 0 {
			c.Concurrency = 512
		} else {
			c.Concurrency = 16
		}
	}
	if c.Catalog == nil {
		c.Catalog = catalog.Default()
	}
	if c.MaxLines == 0 {
		c.MaxLines = 3
	}
	if c.MaxQuantity == 0 {
		c.MaxQuantity = 3
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = 60 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = 200 * time.Millisecond
	}
	if c.Seed == 0 {
		c.Seed = mrand.Uint64()
	}
	if c.RunID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.RunID = "lg-" + hex.EncodeToString(b[:])
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 5 * time.Second
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = 5 * time.Second
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 10 * time.Second
	}
}

// Validate reports an unusable config.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" && c.Client == nil {
		errs = append(errs, errors.New("no order API URL"))
	}
	if c.Duration <= 0 && c.Count <= 0 {
		errs = append(errs, errors.New("set a duration or a count of orders"))
	}
	if c.Duration < 0 || c.Count < 0 || c.Rate < 0 || c.Concurrency < 0 || c.MaxPending < 0 {
		errs = append(errs, errors.New("duration, count, rate, concurrency and max pending must not be negative"))
	}
	if c.MaxLines < 0 || c.MaxQuantity < 0 || c.WaitTimeout < 0 || c.PollInterval < 0 || c.MaxRetryAfter < 0 {
		errs = append(errs, errors.New("lines, quantity, wait timeout, poll interval and max retry-after must not be negative"))
	}
	if c.Catalog != nil {
		if err := c.Catalog.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Mode names how load is offered: "rate" or "concurrency".
func (c Config) Mode() string {
	if c.Rate > 0 {
		return "rate"
	}
	return "concurrency"
}

// Run offers the load, waits for the orders to end and reports. It first
// waits up to ReadyTimeout for the order API to be ready, and returns an
// error without a report (StartedAt zero) if it is not. When ctx ends it
// stops placing, looks once more for terminal orders and returns the
// report so far with Interrupted set (and no error); when ctx ends during
// the wait for readiness, it returns no report and no error.
//
// A place request that fails is sent again with the same Idempotency-Key,
// so it never places a second order. A refusal (503 or 429 with a
// Retry-After, the order service's answer while too many orders are open)
// is sent again after the wait it asks for, at most MaxRetryAfter, for as
// long as placing goes on (until Duration ends, or ctx; with Count alone,
// for WaitTimeout after the order's first refusal); each refusal is
// counted in Report.PlaceRefused, and an order still refused when placing
// ends is a place error. Other failures are tried twice more, 50ms and
// 100ms apart. In rate mode a request waiting to be sent again does not
// count against Concurrency, so refusals neither slow the pacer down nor
// make it send a burst later: new orders keep their due times, and the
// retries come on top of them, as they would from real clients.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return Report{}, fmt.Errorf("config: %w", err)
	}
	client := cfg.Client
	if client == nil {
		var err error
		if client, err = NewClient(cfg.URL, cfg.Concurrency); err != nil {
			return Report{}, fmt.Errorf("client: %w", err)
		}
		defer client.Close()
	}
	if cfg.ReadyTimeout > 0 {
		readyCtx, cancel := context.WithTimeout(ctx, cfg.ReadyTimeout)
		err := client.Ready(readyCtx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return Report{}, nil // interrupted before anything was placed
			}
			return Report{}, fmt.Errorf("%w; is the system running (go tool task run) and is the URL right?", err)
		}
	}
	r := &runner{cfg: cfg, client: client, tracker: newTracker(client, trackerConfig{})}
	return r.run(ctx)
}

type runner struct {
	cfg     Config
	client  *Client
	tracker *tracker

	started time.Time
	placed  atomic.Int64
	failed  atomic.Int64
	retried atomic.Int64
	refused atomic.Int64
	placing atomic.Bool
	// roomMu guards reserved: the orders being placed under MaxPending,
	// which count with the pending ones (see waitRoom).
	roomMu   sync.Mutex
	reserved int
	// stalled: placing stopped because no pending order ended for
	// WaitTimeout while MaxPending held it back.
	stalled   atomic.Bool
	mu        sync.Mutex
	placeLat  []time.Duration
	errKinds  map[string]int
	lastError string
}

func (r *runner) run(ctx context.Context) (Report, error) {
	r.started = time.Now()
	r.errKinds = map[string]int{}
	r.placing.Store(true)

	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.progress(stopProgress)
	}()
	defer func() {
		close(stopProgress)
		<-progressDone
	}()

	// Look for terminal orders while placing, so that the pending set
	// stays small, MaxPending frees up and the progress line shows
	// completions.
	pollCtx, stopPolling := context.WithCancel(ctx)
	pollDone := make(chan error, 1)
	go func() { pollDone <- r.poll(pollCtx, r.cfg.PollInterval, 0) }()

	r.place(ctx)
	placeEnd := time.Now()
	r.placing.Store(false)
	stopPolling()
	<-pollDone // never fails: it keeps trying while placing

	interrupted := ctx.Err() != nil
	var waitErr error
	if interrupted {
		// One last look, so that the report says what did finish.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, waitErr = r.tracker.round(fctx, time.Now())
		cancel()
	} else {
		wctx, cancel := context.WithTimeout(ctx, r.cfg.WaitTimeout)
		waitErr = r.poll(wctx, r.cfg.PollInterval, 3)
		cancel()
		interrupted = ctx.Err() != nil
	}
	if errors.Is(waitErr, context.DeadlineExceeded) || errors.Is(waitErr, context.Canceled) {
		waitErr = nil
	}
	rep := r.report(placeEnd, interrupted)
	if r.stalled.Load() {
		return rep, fmt.Errorf("stopped placing: no order ended for %s while %d were pending (--max-pending): is the system up?", r.cfg.WaitTimeout, r.cfg.MaxPending)
	}
	if waitErr != nil {
		return rep, fmt.Errorf("wait for terminal orders: %w", waitErr)
	}
	return rep, nil
}

// poll runs tracker rounds, pollWait(interval, …) apart, until nothing is
// pending (and placing is over) or ctx ends. It returns nil then, or the error of a
// round that failed maxFails times running (0: it never gives up).
func (r *runner) poll(ctx context.Context, interval time.Duration, maxFails int) error {
	fails := 0
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		started := time.Now()
		pending, err := r.tracker.round(ctx, started)
		t.Reset(pollWait(interval, r.tracker.oldestPendingAge(time.Now())) - time.Since(started))
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if fails++; maxFails > 0 && fails >= maxFails {
				return err
			}
		default:
			fails = 0
			if pending == 0 && !r.placing.Load() {
				return nil
			}
		}
	}
}

// maxPollInterval bounds how far pollWait stretches the interval: with
// the default interval, a run's end is noticed within this.
const maxPollInterval = 2 * time.Second

// pollWait is the time from one tracker round's start to the next's: the
// interval, or a tenth of the oldest pending order's age if that is longer
// (at most maxPollInterval). Every round reads again the orders that ended
// since the oldest pending one was placed, so a fixed interval makes the
// reads per order grow with the latency; this way an order is read about
// ten times at most, and the moment an order is found terminal lags its
// end by at most a tenth of the wait so far (latencies are the server's
// own timestamps, so only MaxPending's gate and the progress line see it).
func pollWait(interval, oldestAge time.Duration) time.Duration {
	return max(interval, min(oldestAge/10, maxPollInterval))
}

// place offers the load until Duration or Count is reached or ctx ends,
// and returns once every request it sent has been answered.
func (r *runner) place(ctx context.Context) {
	dispatchCtx := ctx
	if r.cfg.Duration > 0 {
		var cancel context.CancelFunc
		dispatchCtx, cancel = context.WithDeadline(ctx, r.started.Add(r.cfg.Duration))
		defer cancel()
	}
	more := func(i int) bool { return (r.cfg.Count == 0 || i < r.cfg.Count) && dispatchCtx.Err() == nil }

	var wg sync.WaitGroup
	if r.cfg.Rate > 0 {
		pacer := Pacer{Start: r.started, Rate: r.cfg.Rate}
		sem := make(slots, r.cfg.Concurrency)
		for i := 0; more(i); i++ {
			if r.cfg.Duration > 0 && !pacer.Due(i).Before(r.started.Add(r.cfg.Duration)) {
				break // due at or after the end, however late this loop runs
			}
			if pacer.Wait(dispatchCtx, i, time.Now) != nil || !r.waitRoom(dispatchCtx) {
				break
			}
			if !sem.acquire(dispatchCtx) {
				r.unreserve()
				break
			}
			req := r.newOrder(i)
			wg.Go(func() {
				defer r.unreserve()
				r.placeOne(ctx, dispatchCtx, i, req, sem)
			})
		}
	} else {
		var next atomic.Int64
		for range r.cfg.Concurrency {
			wg.Go(func() {
				for {
					// The count first: once it is placed, a worker
					// must not wait for room it no longer needs.
					i := int(next.Add(1) - 1)
					if !more(i) || !r.waitRoom(dispatchCtx) {
						return
					}
					// The worker is its own slot: a refused order
					// holds it back, as a real client waiting would.
					r.placeOne(ctx, dispatchCtx, i, r.newOrder(i), nil)
					r.unreserve()
				}
			})
		}
	}
	wg.Wait()
}

// newOrder draws order i: 1..MaxLines distinct SKUs, 1..MaxQuantity units
// each, from a generator of its own seeded with (Seed, i), so that a run
// with the same seed and run id sends the same orders under the same keys
// whichever worker sends which.
func (r *runner) newOrder(i int) OrderRequest {
	rnd := mrand.New(mrand.NewPCG(r.cfg.Seed, uint64(i)))
	n := min(1+rnd.IntN(r.cfg.MaxLines), len(r.cfg.Catalog))
	perm := rnd.Perm(len(r.cfg.Catalog))[:n]
	lines := make([]Line, n)
	for j, p := range perm {
		lines[j] = Line{SKU: r.cfg.Catalog[p].SKU, Quantity: 1 + rnd.IntN(r.cfg.MaxQuantity)}
	}
	return OrderRequest{CustomerID: fmt.Sprintf("%s-c%d", r.cfg.RunID, i%1000), Items: lines}
}

// waitRoom blocks while MaxPending orders are pending or being placed,
// then reserves a place for one more, which the caller gives back with
// unreserve once that order is pending or given up. It reports false,
// reserving nothing, when ctx ends first, or when no pending order has
// ended for WaitTimeout: the system makes no progress, and placing stops
// (stalled) instead of waiting for ever.
func (r *runner) waitRoom(ctx context.Context) bool {
	if r.cfg.MaxPending == 0 {
		return true
	}
	lastPending, since := -1, time.Now()
	for {
		r.roomMu.Lock()
		pending := r.tracker.pendingCount()
		if pending+r.reserved < r.cfg.MaxPending {
			r.reserved++
			r.roomMu.Unlock()
			return true
		}
		r.roomMu.Unlock()
		if pending != lastPending {
			lastPending, since = pending, time.Now()
		} else if time.Since(since) >= r.cfg.WaitTimeout {
			r.stalled.Store(true)
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// unreserve gives back a place waitRoom reserved.
func (r *runner) unreserve() {
	if r.cfg.MaxPending == 0 {
		return
	}
	r.roomMu.Lock()
	r.reserved--
	r.roomMu.Unlock()
}

// slots bounds the place requests in flight in rate mode; a nil slots
// bounds nothing.
type slots chan struct{}

// acquire takes a slot, or reports false when ctx ends first.
func (s slots) acquire(ctx context.Context) bool {
	if s == nil {
		return ctx.Err() == nil
	}
	select {
	case s <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// release gives back a slot taken by acquire.
func (s slots) release() {
	if s != nil {
		<-s
	}
}

// Waits before a place request is sent again.
const (
	// placeAttempts bounds the tries of a request that failed other than
	// by a refusal: a broken server or network is reported, not hidden.
	placeAttempts = 3
	// retryStep is the wait before the second try; the third waits twice
	// as long.
	retryStep = 50 * time.Millisecond
	// minRefusedWait is the least wait after a refusal, so that a server
	// answering "Retry-After: 0" again and again is not sent the order in
	// a tight loop.
	minRefusedWait = 10 * time.Millisecond
)

// placeOne places order i, sending a failed request again with the same
// idempotency key (so a retry never places a second order): after a
// refusal, once the wait its Retry-After asks for is over, for as long as
// window (placing) lasts; after another retryable failure, at most twice.
// Requests use ctx, so that one sent before window ended is answered.
//
// placeOne is called holding a slot of sem and releases it on return. It
// gives the slot back while it waits to try again: the slots bound the
// requests in flight, and a paced dispatcher kept waiting for one by
// sleeping retries would fall behind and then send a burst to catch up.
func (r *runner) placeOne(ctx, window context.Context, i int, req OrderRequest, sem slots) {
	key := fmt.Sprintf("%s-%d", r.cfg.RunID, i)
	held := true
	defer func() {
		if held {
			sem.release()
		}
	}()
	var err error
	failures := 0              // tries that failed other than by a refusal
	var refusedSince time.Time // the first refusal of this order
	for {
		start := time.Now()
		var o Order
		o, err = r.client.Place(ctx, key, req)
		if err == nil {
			lat := time.Since(start)
			r.placed.Add(1)
			r.mu.Lock()
			r.placeLat = append(r.placeLat, lat)
			r.mu.Unlock()
			r.tracker.add(o)
			return
		}
		if ctx.Err() != nil {
			return // interrupted: neither placed nor failed as far as we know
		}
		waitCtx := ctx
		var wait time.Duration
		if d, ok := refusal(err); ok {
			r.refused.Add(1)
			// The server said when to come back; whether to is up to
			// how long placing lasts, not a count of tries. Without a
			// Duration, placing lasts until the count is placed: then a
			// system that refuses for longer than WaitTimeout (stuck at
			// its open-order limit) gets the order reported as not
			// placed instead of keeping loadgen from its report.
			if refusedSince.IsZero() {
				refusedSince = time.Now()
			}
			if r.cfg.Duration == 0 && time.Since(refusedSince) >= r.cfg.WaitTimeout {
				break
			}
			waitCtx, wait = window, max(min(d, r.cfg.MaxRetryAfter), minRefusedWait)
		} else {
			if failures++; failures >= placeAttempts || !retryable(err) {
				break
			}
			r.retried.Add(1)
			wait = time.Duration(failures) * retryStep
		}
		held = false
		sem.release()
		if !sleep(waitCtx, wait) || !sem.acquire(waitCtx) {
			break
		}
		held = true
	}
	if ctx.Err() != nil {
		return // interrupted while waiting to try again
	}
	r.failed.Add(1)
	kind := "transport"
	var se *StatusError
	if errors.As(err, &se) {
		kind = fmt.Sprintf("HTTP %d", se.Code)
	}
	r.mu.Lock()
	r.errKinds[kind]++
	r.lastError = err.Error()
	r.mu.Unlock()
}

// sleep waits for d, or reports false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return ctx.Err() == nil
	}
}
