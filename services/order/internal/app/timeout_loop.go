package app

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// TimeoutLoop fires due step deadlines every Interval. Deadlines live in
// the database, so a loop started after a restart fires those that passed
// while the service was down.
type TimeoutLoop struct {
	fire     FireTimeoutsHandler
	interval time.Duration
	batch    int
	logger   *slog.Logger
}

// NewTimeoutLoop returns a loop that calls fire every interval.
func NewTimeoutLoop(fire FireTimeoutsHandler, interval time.Duration, logger *slog.Logger) (*TimeoutLoop, error) {
	if fire.tx == nil {
		return nil, errors.New("new timeout loop: fire timeouts handler is not initialised")
	}
	if interval <= 0 {
		return nil, errors.New("new timeout loop: interval must be positive")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &TimeoutLoop{fire: fire, interval: interval, batch: 500, logger: logger}, nil
}

// Run fires due deadlines at once and then every interval, until ctx ends;
// it then returns nil. A failing round is logged and retried at the next
// tick. A deadline being handled when ctx ends is left to the next run.
func (l *TimeoutLoop) Run(ctx context.Context) error {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		l.round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// round fires batches until fewer than a batch are due. Each batch starts
// after the last deadline of the one before, so an order that fails does
// not end the round, nor do a whole batch of them: the deadlines behind
// still fire in this round (the failing ones, still due, are retried next
// round). A round with failures logs one error, with their count and the
// first (the orders' own are at debug level): with the disk full, 2,000
// due orders would otherwise log 2,000 lines a second.
func (l *TimeoutLoop) round(ctx context.Context) {
	var (
		after              DeadlinePosition
		due, fired, failed int
		first              error
	)
	defer func() {
		if first != nil && ctx.Err() == nil {
			l.logger.ErrorContext(ctx, "timeout round failed", "failed", failed, "due", due, "fired", fired, "error", first)
		}
	}()
	for ctx.Err() == nil {
		res, err := l.fire.Handle(ctx, FireTimeouts{Limit: l.batch, After: after})
		due, fired, failed = due+res.Due, fired+res.Fired, failed+res.Failed
		if err != nil && first == nil {
			first = err
		}
		if res.Due < l.batch {
			return
		}
		after = res.Last
	}
}
