package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"

	"github.com/orderflow/orderflow/queue/tracing"
)

// TxHandlerFunc handles a message with its effects in tx. Messages it
// returns are stored in the outbox within tx (see HandlerConfig.Outbox);
// it may also write to the outbox itself with Outbox.Publisher(tx), for
// example to emit to several topics.
//
// ctx is the one Handle gives its TxFunc: the message context's values
// (its span, for tracing) without its cancellation. Use it, not
// msg.Context(), for the statements on tx: once a unit of the shared
// transaction has begun, Handle runs it to the end whatever the message's
// context does (see Handle), and mattn/go-sqlite3 runs every statement
// under a cancellable context in a goroutine of its own.
type TxHandlerFunc func(ctx context.Context, msg *message.Message, tx *sql.Tx) ([]*message.Message, error)

// TxPublisher returns a publisher whose messages are part of tx, such as
// *outbox.Outbox.
type TxPublisher interface {
	Publisher(tx *sql.Tx) message.Publisher
}

// HandlerConfig configures Inbox.Handler.
type HandlerConfig struct {
	// ConsumerGroup scopes the deduplication: the same message handled by
	// two groups is processed once by each. Required.
	ConsumerGroup string
	// Outbox stores the messages the handler returns, in the inbox
	// transaction, addressed to PublishTopic. Without it a handler must
	// not return messages: handing them to the router after the commit
	// would lose them if the process died in between (the redelivery
	// would be a duplicate and emit nothing).
	Outbox TxPublisher
	// PublishTopic is the destination of returned messages; required with
	// Outbox.
	PublishTopic string
	// MessageID extracts the deduplication key. Defaults to the message
	// UUID, which the outbox forwarder and the queue preserve.
	MessageID func(msg *message.Message) string
	// Propagator writes the handled message's trace context into the
	// messages the handler returns, so that they stay in its trace.
	// Default: tracing.DefaultPropagator (W3C Trace Context and Baggage),
	// as the queue's own.
	Propagator propagation.TextMapPropagator
}

func (c *HandlerConfig) setDefaults() {
	if c.MessageID == nil {
		c.MessageID = func(msg *message.Message) string { return msg.UUID }
	}
	if c.Propagator == nil {
		c.Propagator = tracing.DefaultPropagator()
	}
}

// Validate reports an unusable config.
func (c HandlerConfig) Validate() error {
	var errs []error
	if c.ConsumerGroup == "" {
		errs = append(errs, errors.New("consumer group is required"))
	}
	if c.Outbox != nil && c.PublishTopic == "" {
		errs = append(errs, errors.New("publish topic is required with an outbox"))
	}
	return errors.Join(errs...)
}

// Handler turns h into a Watermill handler that runs it at most once per
// message id (effectively once, with the queue's redelivery): h, the id
// record and the outgoing messages share one local transaction. A
// duplicate is acked without calling h. An error from h rolls everything
// back and is returned, so the message is nacked and retried.
//
// The returned handler never returns messages to the router (they went to
// the outbox), so it suits Router.AddConsumerHandler through
// func(m *message.Message) error { _, err := handler(m); return err }, or
// AddHandler with any publisher. The message's context ends the wait for
// the shared transaction (see Handle); h runs with its values only (see
// TxHandlerFunc).
//
// A returned message without trace context gets the handled message's
// (its context's span: the consumer span under the queue's router), as
// Watermill's router gives the messages a handler returns: they go to the
// outbox, not through the router, so nothing else would, and the reply
// would start a trace of its own. One that carries trace context already
// keeps it.
func (i *Inbox) Handler(cfg HandlerConfig, h TxHandlerFunc) (message.HandlerFunc, error) {
	if h == nil {
		return nil, errors.New("inbox: handler is nil")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("inbox: invalid handler config: %w", err)
	}
	return func(msg *message.Message) ([]*message.Message, error) {
		id := cfg.MessageID(msg)
		dup, err := i.Handle(msg.Context(), cfg.ConsumerGroup, id, func(ctx context.Context, tx *sql.Tx) error {
			out, err := h(ctx, msg, tx)
			if err != nil {
				return err
			}
			if len(out) == 0 {
				return nil
			}
			if cfg.Outbox == nil {
				return fmt.Errorf("handler returned %d messages but no outbox is configured", len(out))
			}
			for _, m := range out {
				if !hasTraceContext(cfg.Propagator, m) {
					tracing.Config{Propagator: cfg.Propagator}.Inject(msg.Context(), m)
				}
			}
			if err := cfg.Outbox.Publisher(tx).Publish(cfg.PublishTopic, out...); err != nil {
				return fmt.Errorf("store outgoing messages: %w", err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if dup {
			i.logger.Debug("Duplicate message skipped", watermill.LogFields{
				"consumer_group": cfg.ConsumerGroup,
				"message_id":     id,
			})
		}
		return nil, nil
	}, nil
}

// hasTraceContext reports whether msg's metadata holds any of p's fields.
func hasTraceContext(p propagation.TextMapPropagator, msg *message.Message) bool {
	for _, f := range p.Fields() {
		if msg.Metadata.Get(f) != "" {
			return true
		}
	}
	return false
}
