package ports

import (
	"errors"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/services/order/internal/app"
)

// Router is the part of *queue.Router the message handlers need.
type Router interface {
	Handle(name, topic string, h message.NoPublishHandlerFunc)
}

// MessageHandlers turn the replies of inventory, payment and shipping into
// app.HandleReply commands. Retries, dead-lettering and consumer spans are
// the queue router's; the inbox transaction is the app layer's.
//
// With a fault registry, every handler first sleeps for
// faults.HandlerLatency and, after the reply's transaction committed,
// stops at the faults.CrashAfterCommit crash point (before the ack).
type MessageHandlers struct {
	app    *app.Application
	faults *faults.Registry
	logger *slog.Logger
}

// NewMessageHandlers returns the handlers; reg and logger may be nil.
func NewMessageHandlers(a *app.Application, reg *faults.Registry, logger *slog.Logger) (*MessageHandlers, error) {
	if a == nil {
		return nil, errors.New("new message handlers: app is nil")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &MessageHandlers{app: a, faults: reg, logger: logger}, nil
}

// Topics are the topics the order service consumes.
var Topics = []string{contracts.TopicInventoryEvents, contracts.TopicPaymentEvents, contracts.TopicShippingEvents}

// Register adds one handler per consumed topic to r.
func (h *MessageHandlers) Register(r Router) {
	for _, t := range Topics {
		r.Handle("order-"+t, t, h.Handle)
	}
}

// Handle decodes one reply and applies it. An undecodable message, a
// message that is not a reply, a reply for an unknown order or one the saga
// cannot use is permanent (dead-lettered at once); other errors are retried
// by the router.
func (h *MessageHandlers) Handle(msg *message.Message) error {
	ctx := msg.Context()
	if h.faults != nil {
		if err := h.faults.Sleep(ctx, faults.HandlerLatency); err != nil {
			return err
		}
	}
	m, err := contracts.Decode(msg.Metadata, msg.Payload)
	if err != nil {
		h.logger.WarnContext(ctx, "undecodable message", "message_id", msg.UUID, "error", err)
		return queue.Permanent(err)
	}
	err = h.app.Commands.HandleReply.Handle(ctx, app.HandleReply{MessageID: msg.UUID, Reply: m})
	if err != nil && app.IsPermanent(err) {
		h.logger.WarnContext(ctx, "unusable reply", "message_id", msg.UUID, "order_id", m.CorrelationID(), "error", err)
		return queue.Permanent(err)
	}
	if err == nil && h.faults != nil {
		h.faults.CrashPoint(faults.CrashAfterCommit)
	}
	return err
}
