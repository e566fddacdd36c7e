package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// HandleReply is a reply of inventory, payment or shipping, as received
// from the queue.
type HandleReply struct {
	// MessageID is the queue message's id: the inbox key and the causation
	// id of what the reply decides.
	MessageID string
	// Reply is the decoded message: one of StockReserved,
	// StockReservationFailed, StockReleased, PaymentCharged,
	// PaymentDeclined, PaymentRefunded, ShipmentScheduled, ShipmentFailed,
	// ShipmentCancelled.
	Reply contracts.Message
}

// ErrUnexpectedMessage: HandleReply was given a message that is not a reply
// of the saga (a command, say). Like domain.ErrInvalidReply and
// ErrOrderNotFound it is permanent: redelivery cannot fix it.
var ErrUnexpectedMessage = errors.New("not a saga reply")

// HandleReplyHandler applies a service reply to its order, effectively
// once: the inbox record, the events, the projections and the messages the
// decision sends share one transaction, and a redelivered reply changes
// nothing.
type HandleReplyHandler struct {
	tx Transactor
	c  *committer
}

// NewHandleReplyHandler returns a HandleReplyHandler.
func NewHandleReplyHandler(tx Transactor, opts Options) (HandleReplyHandler, error) {
	if tx == nil {
		return HandleReplyHandler{}, errors.New("new handle reply handler: transactor is nil")
	}
	c, err := newCommitter(opts)
	if err != nil {
		return HandleReplyHandler{}, fmt.Errorf("new handle reply handler: %w", err)
	}
	return HandleReplyHandler{tx: tx, c: c}, nil
}

// Handle applies the reply and reports whether it was a duplicate (its
// message id already processed: nothing done). Errors matching
// ErrOrderNotFound, domain.ErrInvalidReply or ErrUnexpectedMessage are
// permanent; others (storage) are worth a retry.
func (h HandleReplyHandler) Handle(ctx context.Context, cmd HandleReply) (bool, error) {
	if h.tx == nil {
		return false, errors.New("handle reply: handler not initialised")
	}
	if cmd.Reply == nil {
		return false, fmt.Errorf("handle reply: %w: no message", ErrUnexpectedMessage)
	}
	if cmd.MessageID == "" {
		return false, errors.New("handle reply: message id is required")
	}
	orderID := cmd.Reply.CorrelationID()
	var (
		o         *domain.Order
		d         domain.Decision
		now       time.Time
		duplicate bool
	)
	err := h.c.retryOnConflict(ctx, func() error {
		var err error
		duplicate, err = h.tx.InInbox(ctx, ConsumerGroup, cmd.MessageID, func(ctx context.Context, tx Tx) error {
			var err error
			if o, err = tx.LoadOrder(ctx, orderID); err != nil {
				return err
			}
			now = h.c.now()
			if d, err = decideReply(o, cmd.Reply, now); err != nil {
				return err
			}
			meta := newMetadata(ctx, orderID, cmd.Reply.MessageType(), cmd.MessageID)
			return h.c.commit(ctx, tx, o, d, meta, now)
		})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("handle %s for order %s: %w", cmd.Reply.MessageType(), orderID, err)
	}
	log := h.c.opts.Logger.With("order_id", orderID, "message_type", cmd.Reply.MessageType(), "message_id", cmd.MessageID)
	switch {
	case duplicate:
		log.DebugContext(ctx, "duplicate reply skipped")
	case d.IsEmpty():
		log.DebugContext(ctx, "reply changed nothing", "status", o.Status())
	default:
		h.c.observe(ctx, o, d, now)
		log.InfoContext(ctx, "reply applied", "status", o.Status(), "events", len(d.Events), "commands", len(d.Commands))
	}
	return duplicate, nil
}

// decideReply calls the decision method of the reply's type.
func decideReply(o *domain.Order, m contracts.Message, now time.Time) (domain.Decision, error) {
	switch m := m.(type) {
	case contracts.StockReserved:
		return o.OnStockReserved(now)
	case contracts.StockReservationFailed:
		return o.OnStockReservationFailed(m.Reason, now)
	case contracts.StockReleased:
		return o.OnStockReleased(len(m.Items) > 0, now)
	case contracts.PaymentCharged:
		return o.OnPaymentCharged(m.PaymentID, m.AmountCents, now)
	case contracts.PaymentDeclined:
		return o.OnPaymentDeclined(m.Reason, now)
	case contracts.PaymentRefunded:
		return o.OnPaymentRefunded(m.PaymentID, m.AmountCents, now)
	case contracts.ShipmentScheduled:
		return o.OnShipmentScheduled(m.ShipmentID, m.Carrier, m.TrackingNumber, now)
	case contracts.ShipmentFailed:
		return o.OnShipmentFailed(m.Reason, now)
	case contracts.ShipmentCancelled:
		return o.OnShipmentCancelled(m.ShipmentID, now)
	}
	return domain.Decision{}, fmt.Errorf("%w: %s", ErrUnexpectedMessage, m.MessageType())
}

// IsPermanent reports whether err from HandleReplyHandler.Handle is one
// that no redelivery can fix.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrOrderNotFound) || errors.Is(err, domain.ErrInvalidReply) || errors.Is(err, ErrUnexpectedMessage)
}
