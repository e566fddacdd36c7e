package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// CancelOrder is the customer's request to cancel an order.
type CancelOrder struct {
	OrderID string
	// Reason is optional; the domain supplies a default.
	Reason string
	// RequestID identifies the request (the causation id); optional.
	RequestID string
}

// CancelOrderHandler records the cancellation and sends the compensations of
// the steps already done, in one transaction.
//
// The decision is taken in an "order cancel" span of the order's own trace
// (a child of the span of its latest decision), linked both ways with the
// span of the request, which has a trace of its own: the compensations,
// their replies and any timeout after them stay in the order's one trace.
type CancelOrderHandler struct {
	tx     Transactor
	c      *committer
	tracer trace.Tracer
}

// NewCancelOrderHandler returns a CancelOrderHandler.
func NewCancelOrderHandler(tx Transactor, opts Options) (CancelOrderHandler, error) {
	if tx == nil {
		return CancelOrderHandler{}, errors.New("new cancel order handler: transactor is nil")
	}
	c, err := newCommitter(opts)
	if err != nil {
		return CancelOrderHandler{}, fmt.Errorf("new cancel order handler: %w", err)
	}
	return CancelOrderHandler{tx: tx, c: c, tracer: c.opts.TracerProvider.Tracer(instrumentationName)}, nil
}

// Handle cancels the order and returns its view as the transaction that
// cancelled it committed it: the answer to the request needs no read that
// could fail once the cancellation is committed (as PlaceOrderResult.Order).
// Cancelling a cancelling or cancelled order is a no-op that returns the
// order's view; a COMPLETED or REJECTED one returns
// domain.ErrNotCancellable, an unknown one ErrOrderNotFound; a reason
// longer than MaxTextLength or with control characters a
// *domain.ValidationError (the reason is stored and sent with every
// compensation).
func (h CancelOrderHandler) Handle(ctx context.Context, cmd CancelOrder) (OrderView, error) {
	if h.tx == nil {
		return OrderView{}, errors.New("cancel order: handler not initialised")
	}
	if problems := textProblems("reason", cmd.Reason, MaxTextLength); len(problems) > 0 {
		return OrderView{}, fmt.Errorf("cancel order %s: %w", cmd.OrderID, &domain.ValidationError{Fields: problems})
	}
	var (
		o    *domain.Order
		d    domain.Decision
		v    OrderView
		now  time.Time
		span trace.Span // started on the first attempt, ended after the last
	)
	err := h.c.retryOnConflict(ctx, func() error {
		return h.tx.InTx(ctx, func(ctx context.Context, tx Tx) error {
			var err error
			if o, err = tx.LoadOrder(ctx, cmd.OrderID); err != nil {
				return err
			}
			if span == nil {
				latest, err := tx.LatestMetadata(ctx, cmd.OrderID)
				if err != nil {
					return err
				}
				span = h.startSpan(ctx, cmd.OrderID, latest)
			}
			ctx = trace.ContextWithSpan(ctx, span)
			now = h.c.now()
			if d, err = o.Cancel(cmd.Reason, now); err != nil {
				return err
			}
			if err := h.c.commit(ctx, tx, o, d, newMetadata(ctx, o.ID(), "http", cmd.RequestID), now); err != nil {
				return err
			}
			// Read in the transaction, from the projection the commit
			// updated: the view holds what only the stored events know
			// (the placement's trace; for a no-op, when the order last
			// changed).
			v, err = tx.OrderView(ctx, cmd.OrderID)
			return err
		})
	})
	if span != nil {
		if err != nil && !errors.Is(err, domain.ErrNotCancellable) {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	if err != nil {
		return OrderView{}, fmt.Errorf("cancel order %s: %w", cmd.OrderID, err)
	}
	// Logged in the cancel span's context: the line names the order's
	// trace, where the decision and its compensations are, not the
	// request's own.
	if span != nil {
		ctx = trace.ContextWithSpan(ctx, span)
	}
	h.c.observe(ctx, o, d, now)
	h.c.opts.Logger.InfoContext(ctx, "order cancellation requested", "order_id", cmd.OrderID)
	return v, nil
}

// startSpan starts the "order cancel" span under the order's latest
// decision, linked with the request's span (ctx's) in both directions.
// Without a recorded trace context it is a child of the request's span.
func (h CancelOrderHandler) startSpan(ctx context.Context, orderID string, latest EventMetadata) trace.Span {
	request := trace.SpanFromContext(ctx)
	_, span := h.tracer.Start(withRecordedParent(ctx, latest.TraceID, latest.SpanID, latest.TraceFlags), "order cancel",
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithLinks(trace.Link{SpanContext: request.SpanContext()}),
		trace.WithAttributes(AttributeOrderID.String(orderID)))
	if sc := span.SpanContext(); sc.IsValid() && sc.TraceID() != request.SpanContext().TraceID() {
		request.AddLink(trace.Link{SpanContext: sc})
	}
	return span
}
