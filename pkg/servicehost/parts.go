package servicehost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/outbox"
)

// The parts below are what Host is made of, exported for a service that
// wires itself (the order service, with its API and timeout loop).

// NewRouter creates q's router for cfg, counting in meter every retry
// (orderflow.messages.retried) and dead letter
// (orderflow.messages.dead_lettered) by topic, each at 0 from the
// registration of the topic's handler on. It sets cfg.Retry's OnRetry and
// OnDeadLetter, cfg.OnHandle and, when it is not set, cfg.Retry's
// LogMetadata: the records of retries and dead letters carry the order id
// (the message's contracts.MetadataCorrelationID) as "order_id" and its
// type (contracts.MetadataType) as "type", as the services' own records
// do. They are the only records of a handler's failure
// (pkg/commandhandler writes none).
func NewRouter(q *queue.Queue, cfg queue.RouterConfig, meter metric.Meter) (*queue.Router, error) {
	if cfg.Retry.LogMetadata == nil {
		cfg.Retry.LogMetadata = map[string]string{contracts.MetadataCorrelationID: "order_id", contracts.MetadataType: "type"}
	}
	retries, _ := meter.Int64Counter("orderflow.messages.retried", metric.WithDescription("Failed messages scheduled for another attempt."))
	dead, _ := meter.Int64Counter("orderflow.messages.dead_lettered", metric.WithDescription("Messages moved to the dead-letter queue."))
	cfg.Retry.OnRetry = func(topic string) {
		retries.Add(context.Background(), 1, metric.WithAttributes(attribute.String("topic", topic)))
	}
	cfg.Retry.OnDeadLetter = func(topic string) {
		dead.Add(context.Background(), 1, metric.WithAttributes(attribute.String("topic", topic)))
	}
	// Exported at 0, so that the first retry or dead letter after a start
	// is an increase that increase() and alerts see.
	cfg.OnHandle = func(topic string) {
		attrs := metric.WithAttributes(attribute.String("topic", topic))
		retries.Add(context.Background(), 0, attrs)
		dead.Add(context.Background(), 0, attrs)
	}
	return q.NewRouter(cfg)
}

// Pinger is a database that answers a ping.
type Pinger func(ctx context.Context) error

// WriteHealthReporter tells, without writing, whether its writes
// currently fail (the queue's SQLite and PostgreSQL Backends; a service's
// inbox, whose transactions are all of its database's writes, or a store
// on it).
type WriteHealthReporter interface {
	WriteHealth() error
}

// Ready reports whether a service can do its work: its message handlers
// run (router), its database answers (ping) and takes writes (db, when not
// nil), and so does the queue (b), whose writes do not currently fail if
// it can tell (a WriteHealth method): a disk-full outage or a corrupt file
// fails every commit while pings and reads still answer. Its errors wrap
// admin.ErrUnavailable (503 on /readyz).
func Ready(ctx context.Context, router *queue.Router, ping Pinger, db WriteHealthReporter, b backend.Backend) error {
	select {
	case <-router.Running():
	default:
		return fmt.Errorf("%w: message handlers are not running", admin.ErrUnavailable)
	}
	if err := ping(ctx); err != nil {
		return fmt.Errorf("%w: database: %v", admin.ErrUnavailable, err)
	}
	if db != nil {
		if err := db.WriteHealth(); err != nil {
			return fmt.Errorf("%w: %v", admin.ErrUnavailable, err)
		}
	}
	// First: it costs nothing, and names the cause of what the reads
	// would report as a symptom (a queue file replaced under the process
	// makes them fail with "database disk image is malformed").
	if h, ok := b.(WriteHealthReporter); ok {
		if err := h.WriteHealth(); err != nil {
			return fmt.Errorf("%w: queue: %v", admin.ErrUnavailable, err)
		}
	}
	if _, err := b.Inspector().Topics(ctx); err != nil {
		return fmt.Errorf("%w: queue: %v", admin.ErrUnavailable, err)
	}
	return nil
}

// PoisonFault returns the handler of the one-shot poison fault; register
// it with reg.OnChange(faults.Poison, …). On "true" it calls emit, which
// stores one unreadable message for topic and returns its id, logs it and
// switches the flag back off. If emit fails, the handler returns its error
// (the admin API answers PUT /faults/poison with it; a caller of its own
// logs it), the flag switched off all the same.
func PoisonFault(reg *faults.Registry, logger *slog.Logger, topic string, emit func(ctx context.Context) (string, error)) func(value string) error {
	return func(value string) error {
		if value != "true" {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		id, err := emit(ctx)
		if err != nil {
			err = fmt.Errorf("poison message not published: %w", err)
		} else {
			logger.WarnContext(ctx, "fault injection: poison message published",
				slog.String("topic", topic), slog.String("message_id", id))
		}
		if rerr := reg.Set(faults.Poison, "false"); rerr != nil {
			err = errors.Join(err, fmt.Errorf("reset poison: %w", rerr))
		}
		return err
	}
}

// FlushOutbox waits, until ctx ends, until fwd has relayed every
// committed message, and logs what is left if it has not (the rest is
// forwarded after the restart: nothing committed to the outbox is lost).
func FlushOutbox(ctx context.Context, fwd *outbox.Forwarder, logger *slog.Logger) {
	for {
		// The count may wait for the database's connection, which a
		// forwarding batch holds while its publish waits: ctx bounds it.
		n, err := fwd.Pending(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			logger.Warn("outbox not flushed by the shutdown's deadline; what it holds is forwarded after the restart")
			return
		case err != nil || n == 0:
			return
		}
		select {
		case <-ctx.Done():
			logger.Warn("outbox not empty at shutdown; the rest is forwarded after the restart", slog.Int64("pending", n))
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// QueueConfig is cfg for the queue at url of a service whose stop is
// planned by plan: on PostgreSQL the subscriptions' close (storing their
// offsets) is bounded by plan.SubscriberClose.
func QueueConfig(url string, plan StopPlan, cfg queue.Config) queue.Config {
	cfg.URL = url
	cfg.Postgres.CloseTimeout = plan.SubscriberClose
	if cfg.SpanAttributes == nil {
		cfg.SpanAttributes = SpanAttributes()
	}
	return cfg
}

// Attributes of the services' producer and consumer spans (SpanAttributes).
const (
	// AttributeMessageType is the contract type of the message a span
	// carries (contracts.MetadataType: "payment.ChargePayment").
	AttributeMessageType = "orderflow.message.type"
	// AttributeOrderID is the order a message is about (its
	// contracts.MetadataCorrelationID): the attribute the order
	// service's own spans carry.
	AttributeOrderID = "order.id"
)

// SpanAttributes are the message metadata the services' queue spans carry
// (queue.Config.SpanAttributes): the message's type, so that a trace
// tells a charge from a refund (both "process payment.commands") and a
// reservation from its release, and the order id, so that a search by
// order.id finds the saga's spans beside the order API's.
func SpanAttributes() map[string]string {
	return map[string]string{
		contracts.MetadataType:          AttributeMessageType,
		contracts.MetadataCorrelationID: AttributeOrderID,
	}
}
