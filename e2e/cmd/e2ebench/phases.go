package main

import (
	"context"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/e2e/loadgen"
)

// phases is what one variant runs, whatever hosts its services.
type phases struct {
	b       *bench
	url     string    // order API
	started time.Time // when the services were started
	ready   func(context.Context) error
	exited  func() error // a service that stopped, if any
	stats   func() map[string]procStats
	profile string // CPU profile of the throughput phase, if set
	// profileProcs, if set, starts CPU profiles of the service processes
	// for the throughput phase; the func it returns waits for them.
	profileProcs func(ctx context.Context, d time.Duration) func() error
}

func (p phases) run(ctx context.Context, r *variantResult) {
	b := p.b
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err := p.ready(rctx)
	cancel()
	if err != nil {
		r.Error = err.Error()
		return
	}
	r.ReadySeconds = time.Since(p.started).Seconds()
	client, err := loadgen.NewClient(p.url, b.opts.Concurrency)
	if err != nil {
		r.Error = err.Error()
		return
	}
	defer client.Close()
	fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	placed, done, err := firstOrder(fctx, client, p.started)
	cancel()
	if err != nil {
		r.Error = fmt.Sprintf("first order: %v", err)
		return
	}
	r.FirstPlacedSeconds, r.FirstOrderSeconds = placed.Seconds(), done.Seconds()
	b.logf("%s: ready after %.2fs, first order completed %.2fs after start", r.Name, r.ReadySeconds, r.FirstOrderSeconds)

	// Idle footprint: a moment after the first order, nothing in flight.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return
	}
	idle := p.stats()

	b.logf("%s: latency phase, %.0f orders/s for %s", r.Name, b.opts.LatencyRate, b.opts.LatencyDuration)
	lat, err := loadgen.Run(ctx, b.loadConfig(client, loadgen.Config{Rate: b.opts.LatencyRate, Duration: b.opts.LatencyDuration}))
	r.Latency = &lat
	if err != nil || ctx.Err() != nil {
		r.Error = errText(err, ctx)
		return
	}
	if err := p.exited(); err != nil {
		r.Error = err.Error()
		return
	}

	b.logf("%s: throughput phase, %d clients, at most %d sagas open, for %s", r.Name, b.opts.Concurrency, b.opts.MaxPending, b.opts.Duration)
	if p.profile != "" {
		stop, err := startCPUProfile(p.profile, r.Key == "sqlite-inprocess")
		if err != nil {
			r.Error = fmt.Sprintf("cpu profile: %v", err)
			return
		}
		defer func() {
			if err := stop(); err != nil && r.Error == "" {
				r.Error = fmt.Sprintf("cpu profile: %v", err)
			}
			b.logf("%s: CPU profile of the throughput phase in %s", r.Name, p.profile)
		}()
	}
	if p.profileProcs != nil {
		wait := p.profileProcs(ctx, b.opts.Duration)
		defer func() {
			if err := wait(); err != nil && r.Error == "" {
				r.Error = fmt.Sprintf("cpu profiles: %v", err)
			}
		}()
	}
	before := p.stats()
	start := time.Now()
	thr, err := loadgen.Run(ctx, b.loadConfig(client, loadgen.Config{
		Concurrency: b.opts.Concurrency, MaxPending: b.opts.MaxPending, Duration: b.opts.Duration,
	}))
	wall := time.Since(start).Seconds()
	r.Throughput = &thr
	after := p.stats()
	if err != nil || ctx.Err() != nil {
		r.Error = errText(err, ctx)
	} else if err := p.exited(); err != nil {
		r.Error = err.Error()
	}
	for name, a := range after {
		pr := procResult{
			Name:       name,
			IdleRSSMiB: kib(idle[name].RSSKiB),
			PeakRSSMiB: kib(a.HWMKiB),
			CPUSeconds: a.CPUSecs - before[name].CPUSecs,
		}
		if wall > 0 {
			pr.CPUPercent = 100 * pr.CPUSeconds / wall
		}
		if n := thr.Terminal(); n > 0 {
			pr.CPUMsPerOrder = 1000 * pr.CPUSeconds / float64(n)
		}
		if lb, la := before[name].QueueLock, a.QueueLock; lb != nil && la != nil && wall > 0 {
			held, wait := 100*(la.Held-lb.Held)/wall, 100*(la.Wait-lb.Wait)/wall
			pr.QueueLockHeldPercent, pr.QueueLockWaitPercent = &held, &wait
		}
		r.Procs = append(r.Procs, pr)
	}
	sortProcs(r.Procs)
}

func (b *bench) loadConfig(c *loadgen.Client, cfg loadgen.Config) loadgen.Config {
	cfg.Client = c
	cfg.URL = c.BaseURL()
	cfg.WaitTimeout = 120 * time.Second
	if b.opts.Progress {
		cfg.Progress, cfg.ProgressTTY = b.log, b.tty
	}
	return cfg
}

// firstOrder places one order as soon as the API takes it and waits for
// it to be terminal; it returns both times since start.
func firstOrder(ctx context.Context, c *loadgen.Client, start time.Time) (placed, done time.Duration, err error) {
	req := loadgen.OrderRequest{CustomerID: "e2ebench", Items: []loadgen.Line{{SKU: "SKU-1", Quantity: 1}}}
	key := fmt.Sprintf("e2ebench-first-%d", time.Now().UnixNano())
	var o loadgen.Order
	for {
		var perr error
		if o, perr = c.Place(ctx, key, req); perr == nil {
			break
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return 0, 0, fmt.Errorf("%w (last: %v)", err, perr)
		}
	}
	placed = time.Since(start)
	for !loadgen.IsTerminal(o.Status) {
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return 0, 0, err
		}
		if o, err = c.Get(ctx, o.ID); err != nil {
			return 0, 0, err
		}
	}
	if o.Status != loadgen.StatusCompleted {
		return 0, 0, fmt.Errorf("first order %s ended %s: %s", o.ID, o.Status, o.Reason)
	}
	return placed, time.Since(start), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func errText(err error, ctx context.Context) string {
	if err != nil {
		return err.Error()
	}
	return ctx.Err().Error()
}

func kib(n int64) float64 { return float64(n) / 1024 }
