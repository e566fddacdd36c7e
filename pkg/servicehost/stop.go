package servicehost

import (
	"context"
	"time"
)

// A graceful stop is bounded as a whole by the service's ShutdownTimeout,
// from the moment it begins (the signal) to the process's exit, and shares
// it out so that each part has its turn and none can push the stop past
// the bound (a supervisor kills the process after its own grace: devrun
// and Docker Compose give 15 s):
//
//   - DrainShare: the HTTP servers' requests in progress and the running
//     message handlers finish (no new ones start); those still running
//     then are cancelled, and their messages delivered again later.
//   - SubscriberCloseShare: on PostgreSQL, the subscriptions store the
//     offsets of what was acked (postgres.Config.CloseTimeout); a batch
//     whose offset is not stored then is delivered again (the inboxes drop
//     what was handled).
//   - until CloseShare: the outbox forwards what the handlers committed,
//     then the queue and the databases close. What the queue cannot write
//     by then (another process holds the SQLite queue's write lock; the
//     PostgreSQL server does not answer) is given up without losing a
//     message: an ack not written leaves its message to be delivered
//     again, a publish not written stays in the outbox.
//   - the rest: the telemetry's last export (pkg/servicecmd).
//
// Each part usually takes milliseconds; the shares bound what a stuck one
// may take.
const (
	DrainShare           = 0.7
	SubscriberCloseShare = 0.1
	CloseShare           = 0.95
)

// StopPlan is a graceful stop's bounds, from its ShutdownTimeout.
type StopPlan struct {
	// Drain bounds the requests and handlers running when the stop
	// begins (the router's CloseTimeout, the HTTP servers' shutdown).
	Drain time.Duration
	// SubscriberClose bounds, on PostgreSQL, the storing of the offsets
	// once the handlers are done.
	SubscriberClose time.Duration
	// Close is when, counted from the stop's start, the outbox's last
	// forward and the closing of the queue and the databases are given
	// up on.
	Close time.Duration
}

// PlanStop shares out shutdownTimeout (see DrainShare).
func PlanStop(shutdownTimeout time.Duration) StopPlan {
	share := func(f float64) time.Duration {
		return max(time.Duration(float64(shutdownTimeout)*f), time.Millisecond)
	}
	return StopPlan{Drain: share(DrainShare), SubscriberClose: share(SubscriberCloseShare), Close: share(CloseShare)}
}

// CloseContext is the context of the stop's last part, which began at
// start: it ends at start + p.Close.
func (p StopPlan) CloseContext(start time.Time) (context.Context, context.CancelFunc) {
	return context.WithDeadline(context.Background(), start.Add(p.Close))
}
