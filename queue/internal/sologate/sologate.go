// Package sologate lets one message handler run alone in its process while
// the others share it.
//
// A queue backend hands a message out under a share of its Gate, held
// until the message's outcome, and a message suspected of taking its
// process down (its previous delivery was abandoned) under the whole Gate:
// it waits for every handler running to finish, keeps new ones out, and so
// runs alone. Should the process die during that run, the run is evidence
// against that message only.
package sologate

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// DefaultAloneWait is how long AloneOrShared waits for the whole gate by
// default: a handler that has not finished in that time (a hung one) must
// not hold up the process's hand-out for longer.
const DefaultAloneWait = 10 * time.Second

// whole is the weight of the gate; far more than handlers ever run at once.
const whole = 1 << 40

// Gate is shared by the handlers of one process (one queue backend). The
// zero Gate is not usable: use New.
type Gate struct {
	sem       *semaphore.Weighted
	aloneWait time.Duration
}

// New returns an open gate whose AloneOrShared waits at most aloneWait
// for the whole gate (DefaultAloneWait when 0).
func New(aloneWait time.Duration) *Gate {
	if aloneWait <= 0 {
		aloneWait = DefaultAloneWait
	}
	return &Gate{sem: semaphore.NewWeighted(whole), aloneWait: aloneWait}
}

// AloneWait is how long AloneOrShared waits for the whole gate.
func (g *Gate) AloneWait() time.Duration { return g.aloneWait }

// AloneOrShared waits for the whole gate, as Alone, but for at most the
// gate's alone wait; then it waits for a share instead, as Share: a
// handler that runs that long must not hold up every other hand-out of
// the process. It reports which it got, and fails only when ctx ends.
func (g *Gate) AloneOrShared(ctx context.Context) (release func(), alone bool, err error) {
	waitCtx, cancel := context.WithTimeout(ctx, g.aloneWait)
	release, err = g.Alone(waitCtx)
	cancel()
	if err == nil {
		return release, true, nil
	}
	if ctx.Err() != nil {
		return nil, false, ctx.Err()
	}
	release, err = g.Share(ctx)
	return release, false, err
}

// Share waits until no handler runs alone and none is waiting to (waiters
// are served in order, so a handler waiting to run alone is not starved)
// and returns the release of the share. It fails only when ctx ends first.
func (g *Gate) Share(ctx context.Context) (release func(), err error) {
	return g.acquire(ctx, 1)
}

// Alone waits until no other handler holds a share and returns the
// release; until then, and until the release, Share waits. It fails only
// when ctx ends first.
func (g *Gate) Alone(ctx context.Context) (release func(), err error) {
	return g.acquire(ctx, whole)
}

func (g *Gate) acquire(ctx context.Context, n int64) (func(), error) {
	if err := g.sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { g.sem.Release(n) }) }, nil
}
