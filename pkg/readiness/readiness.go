// Package readiness runs a service's readiness check for the probes of
// /readyz endpoints, so that a check stuck on a frozen disk costs neither
// a goroutine per probe nor a probe that never answers.
package readiness

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Check runs a readiness function on behalf of concurrent probes: they
// share the run in flight (at most one goroutine, owned by the run
// itself), which gets a context that ends Timeout after it started, and
// a probe that has waited Timeout for it (a function that does not heed
// its context) is answered with an error without it. Safe for concurrent
// use.
type Check struct {
	fn      func(ctx context.Context) error
	timeout time.Duration

	mu      sync.Mutex
	running *run // nil: none in flight
}

// run is one call of the function that probes share: err is set before
// done is closed.
type run struct {
	done chan struct{}
	err  error
}

// New returns a Check of fn that answers within timeout.
func New(fn func(ctx context.Context) error, timeout time.Duration) *Check {
	return &Check{fn: fn, timeout: timeout}
}

// Ready reports fn's answer, or an error once ctx ends or the timeout
// passes first.
func (c *Check) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	r := c.start()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("readiness check did not answer within %v", c.timeout)
	}
}

// start returns the run in flight, starting one if there is none.
func (c *Check) start() *run {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running != nil {
		return c.running
	}
	r := &run{done: make(chan struct{})}
	c.running = r
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		r.err = c.fn(ctx)
		close(r.done)
		c.mu.Lock()
		c.running = nil
		c.mu.Unlock()
	}()
	return r
}
