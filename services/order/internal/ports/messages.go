package ports

import (
	"context"
	"errors"
	"log/slog"

	"go.opentelemetry.io/otel/metric"

	"github.com/orderflow/orderflow/pkg/commandhandler"
	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/services/order/internal/app"
)

// MessageHandlers turn the replies of inventory, payment and shipping into
// app.HandleReply commands, one pkg/commandhandler handler per consumed
// topic, as the other services handle their commands: the handler_latency
// fault before, the crash_after_commit crash point after the reply's
// transaction committed (before the ack), and orderflow.messages.handled
// by type and outcome (ok, duplicate, failed, undecodable). An
// undecodable message, a message that is not a reply, a reply for an
// unknown order or one the saga cannot use is permanent (dead-lettered at
// once); other errors are retried by the router. Retries, dead-lettering
// and consumer spans are the queue router's; the inbox transaction is the
// app layer's.
type MessageHandlers struct {
	handlers []*commandhandler.Handler
}

// NewMessageHandlers returns the handlers. reg supplies the fault flags;
// logger and meter may be nil.
func NewMessageHandlers(a *app.Application, reg *faults.Registry, logger *slog.Logger, meter metric.Meter) (*MessageHandlers, error) {
	if a == nil || reg == nil {
		return nil, errors.New("new message handlers: app and fault registry are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dispatch := func(ctx context.Context, _ *slog.Logger, messageID string, m contracts.Message) (bool, error) {
		return a.Commands.HandleReply.Handle(ctx, app.HandleReply{MessageID: messageID, Reply: m})
	}
	h := &MessageHandlers{}
	for _, t := range Topics() {
		ch, err := commandhandler.New(commandhandler.Config{
			Topic: t, Name: "order-" + t, Dispatch: dispatch, Permanent: app.IsPermanent,
			Faults: reg, Logger: logger, Meter: meter,
		})
		if err != nil {
			return nil, err
		}
		h.handlers = append(h.handlers, ch)
	}
	return h, nil
}

// Topics returns the topics the order service consumes, a new slice each
// call.
func Topics() []string {
	return []string{contracts.TopicInventoryEvents, contracts.TopicPaymentEvents, contracts.TopicShippingEvents}
}

// Register adds one handler per consumed topic to r.
func (h *MessageHandlers) Register(r commandhandler.Router) {
	for _, ch := range h.handlers {
		ch.Register(r)
	}
}
