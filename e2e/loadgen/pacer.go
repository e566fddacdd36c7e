package loadgen

import (
	"context"
	"math"
	"time"
)

// Pacer spaces sends evenly at a fixed rate, open loop: send i is due at
// Start + i/Rate whatever happened to the sends before it, so a slow
// server does not slow the offered load down (no coordinated omission).
// A sender that fell behind catches up at once, as a real crowd of
// clients would.
type Pacer struct {
	Start time.Time
	Rate  float64 // sends per second, > 0
}

// Due returns when send i (from 0) is due; at a rate so low that the time
// does not fit a time.Duration, the farthest time it can say.
func (p Pacer) Due(i int) time.Time {
	d := float64(i) / p.Rate * float64(time.Second)
	if d >= math.MaxInt64 {
		return p.Start.Add(math.MaxInt64)
	}
	return p.Start.Add(time.Duration(d))
}

// SentBy returns how many sends are due at or before t.
func (p Pacer) SentBy(t time.Time) int {
	if t.Before(p.Start) {
		return 0
	}
	return int(t.Sub(p.Start).Seconds()*p.Rate) + 1
}

// Wait blocks until send i is due, or ctx ends (then it returns ctx.Err()).
func (p Pacer) Wait(ctx context.Context, i int, now func() time.Time) error {
	d := p.Due(i).Sub(now())
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return ctx.Err() // both may be ready at once: the context wins
	}
}
