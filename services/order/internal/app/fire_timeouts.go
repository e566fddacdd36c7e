package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// FireTimeouts fires the step deadlines that are due.
type FireTimeouts struct {
	// Limit caps the orders handled by one call. Default 500.
	Limit int
	// After skips the deadlines up to and including this position: a
	// caller going through more than Limit due deadlines passes the Last
	// of the previous call, so deadlines that keep failing are not met
	// again.
	After DeadlinePosition
}

// FireTimeoutsResult counts what a FireTimeouts call did.
type FireTimeoutsResult struct {
	// Due is how many due deadlines were found; Fired how many of them
	// changed their order (the others were already settled by a reply);
	// Failed how many could not be handled (retried next time).
	Due, Fired, Failed int
	// Last is the position of the last due deadline found (zero if none).
	Last DeadlinePosition
}

// FireTimeoutsHandler reads the persisted deadline index and calls
// Order.Timeout on every order whose deadline has passed, each in its own
// transaction, so deadlines survive restarts of the service.
type FireTimeoutsHandler struct {
	tx        Transactor
	deadlines DeadlineIndex
	c         *committer
	tracer    trace.Tracer
}

// NewFireTimeoutsHandler returns a FireTimeoutsHandler.
func NewFireTimeoutsHandler(tx Transactor, deadlines DeadlineIndex, opts Options) (FireTimeoutsHandler, error) {
	if tx == nil {
		return FireTimeoutsHandler{}, errors.New("new fire timeouts handler: transactor is nil")
	}
	if deadlines == nil {
		return FireTimeoutsHandler{}, errors.New("new fire timeouts handler: deadline index is nil")
	}
	c, err := newCommitter(opts)
	if err != nil {
		return FireTimeoutsHandler{}, fmt.Errorf("new fire timeouts handler: %w", err)
	}
	return FireTimeoutsHandler{
		tx: tx, deadlines: deadlines, c: c,
		tracer: c.opts.TracerProvider.Tracer(instrumentationName),
	}, nil
}

// Handle fires every due deadline, up to cmd.Limit. A failure on one order
// does not stop the others: res.Failed counts the failures, each is logged
// at debug level, and the error returned is the first, saying how many
// failed (with the disk full, every one of up to Limit orders fails alike;
// the caller logs once).
func (h FireTimeoutsHandler) Handle(ctx context.Context, cmd FireTimeouts) (FireTimeoutsResult, error) {
	if h.tx == nil {
		return FireTimeoutsResult{}, errors.New("fire timeouts: handler not initialised")
	}
	if cmd.Limit <= 0 {
		cmd.Limit = 500
	}
	due, err := h.deadlines.DueDeadlines(ctx, h.c.now(), cmd.After, cmd.Limit)
	if err != nil {
		return FireTimeoutsResult{}, fmt.Errorf("fire timeouts: %w", err)
	}
	res := FireTimeoutsResult{Due: len(due)}
	if len(due) > 0 {
		last := due[len(due)-1]
		res.Last = DeadlinePosition{Due: last.Due, OrderID: last.OrderID}
	}
	var first error
	for _, dl := range due {
		if ctx.Err() != nil {
			if first == nil {
				first = ctx.Err()
			}
			break
		}
		fired, err := h.fire(ctx, dl)
		if err != nil {
			res.Failed++
			if first == nil {
				first = err
			}
			continue
		}
		if fired {
			res.Fired++
		}
	}
	if first == nil {
		return res, nil
	}
	if res.Failed > 1 {
		return res, fmt.Errorf("fire timeouts: %d of %d failed, the first: %w", res.Failed, res.Due, first)
	}
	return res, fmt.Errorf("fire timeouts: %w", first)
}

// Attributes of the "order timeout" span, besides order.id and the order's
// status after it (order.status).
const (
	attributeTimedOutStatus = attribute.Key("order.timeout.status")   // the status whose step was awaited
	attributeDeadline       = attribute.Key("order.timeout.deadline") // RFC 3339, UTC
	attributeCommands       = attribute.Key("order.timeout.commands") // compensations or cancellations it sent
)

// fire applies Timeout to one order, in a span of the order's own trace
// (a child of the span that made its latest decision), so the compensations
// it sends stay in the order's trace.
func (h FireTimeoutsHandler) fire(ctx context.Context, dl Deadline) (bool, error) {
	ctx, span := h.tracer.Start(orderTraceContext(ctx, dl), "order timeout",
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(AttributeOrderID.String(dl.OrderID)))
	defer span.End()
	var (
		o        *domain.Order
		d        domain.Decision
		now      time.Time
		awaiting domain.Status // the status whose step timed out
		deadline time.Time
	)
	err := h.c.retryOnConflict(ctx, func() error {
		return h.tx.InTx(ctx, func(ctx context.Context, tx Tx) error {
			var err error
			if o, err = tx.LoadOrder(ctx, dl.OrderID); err != nil {
				return err
			}
			now = h.c.now()
			awaiting, deadline = o.Status(), o.Deadline()
			causation := fmt.Sprintf("timeout:%s:%d", dl.OrderID, deadline.UnixMilli())
			if d, err = o.Timeout(now); err != nil {
				return err
			}
			return h.c.commit(ctx, tx, o, d, newMetadata(ctx, dl.OrderID, "timeout", causation), now)
		})
	})
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		// Debug: the caller logs the round's failures once (a storage
		// outage fails every due order alike, each second).
		h.c.opts.Logger.DebugContext(ctx, "cannot fire timeout", "order_id", dl.OrderID, "error", err)
		return false, fmt.Errorf("fire timeout of order %s: %w", dl.OrderID, err)
	}
	// What timed out, so that the span says more than the order's id:
	// the status whose step was awaited, its deadline, and what the
	// timeout did (nothing, when the step's answer came first).
	span.SetAttributes(
		attributeTimedOutStatus.String(string(awaiting)),
		attributeDeadline.String(deadline.UTC().Format(time.RFC3339Nano)),
		statusKey.String(string(o.Status())),
		attributeCommands.Int(len(d.Commands)),
	)
	if d.IsEmpty() {
		span.AddEvent("nothing to do: the order was no longer waiting past its deadline")
		return false, nil
	}
	h.c.metrics.timeouts.Add(ctx, 1)
	h.c.observe(ctx, o, d, now)
	h.c.opts.Logger.InfoContext(ctx, "step timed out", "order_id", dl.OrderID, "status", o.Status(), "commands", len(d.Commands))
	return true, nil
}

// orderTraceContext returns ctx with the order's latest span as remote
// parent, when the deadline carries one.
func orderTraceContext(ctx context.Context, dl Deadline) context.Context {
	return withRecordedParent(ctx, dl.TraceID, dl.SpanID, dl.TraceFlags)
}
