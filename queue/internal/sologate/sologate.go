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

// SlowWait is how long a wait for the whole gate lasts before the backends
// log it: a handler running has not finished in that time, and nothing
// else is handed out meanwhile.
const SlowWait = 10 * time.Second

// whole is the weight of the gate; far more than handlers ever run at once.
const whole = 1 << 40

// Gate is shared by the handlers of one process (one queue backend). The
// zero Gate is not usable: use New.
type Gate struct {
	sem *semaphore.Weighted
}

// New returns an open gate.
func New() *Gate { return &Gate{sem: semaphore.NewWeighted(whole)} }

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
