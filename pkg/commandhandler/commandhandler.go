// Package commandhandler is the Watermill handler of a topic a service
// consumes (inventory.commands, payment.commands, shipping.commands, and
// the order service's replies on the three event topics): it
// decodes each message into its contract type, applies the handler_latency
// fault, hands the command to the service's dispatch function, counts the
// outcome and stops at the crash_after_commit fault point before the ack
// of a message it has just committed (not of a duplicate: the redelivery
// of the message a crash left unacked must go through, or a crash flag
// that stays on would crash the service on the same message forever).
//
// What to do with each command is the service's: its dispatch function
// calls its application layer. Retries, dead letters, their log records
// and consumer spans are the queue router's.
package commandhandler

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/sqlitefile"
)

// Outcomes recorded in the "outcome" attribute of the metrics.
const (
	OutcomeOK          = "ok"
	OutcomeDuplicate   = "duplicate"
	OutcomeFailed      = "failed"
	OutcomeUndecodable = "undecodable"
)

// DispatchFunc handles one decoded command of message id messageID.
// log carries the order id, message id and type. It reports whether the
// message was a duplicate (already processed, nothing done). An error
// wrapped by queue.Permanent, or one Config.Permanent recognises, is not
// retried.
type DispatchFunc func(ctx context.Context, log *slog.Logger, messageID string, m contracts.Message) (duplicate bool, err error)

// Config configures New.
type Config struct {
	// Topic is the topic consumed.
	Topic string
	// Name names the router handler; default Topic.
	Name string
	// Dispatch handles each decoded command. Required.
	Dispatch DispatchFunc
	// Permanent reports the errors of Dispatch that no retry can fix
	// (invalid commands); they are dead-lettered at once. Default none.
	Permanent func(error) bool
	// Faults supplies handler_latency and crash_after_commit. Required.
	Faults *faults.Registry
	// Logger is required.
	Logger *slog.Logger
	// Meter receives orderflow.messages.handled and
	// orderflow.handler.duration. Default no-op.
	Meter metric.Meter
	// Clock times the handler for orderflow.handler.duration. Default
	// time.Now.
	Clock func() time.Time
}

// Validate reports a config New cannot use.
func (c Config) Validate() error {
	if c.Topic == "" || c.Dispatch == nil {
		return errors.New("message handlers: topic and dispatch are required")
	}
	if c.Faults == nil || c.Logger == nil {
		return errors.New("message handlers: faults and logger are required")
	}
	return nil
}

// Handler handles the messages of one command topic.
type Handler struct {
	cfg     Config
	handled metric.Int64Counter
	latency metric.Float64Histogram
}

// New checks cfg and returns the handler.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Meter == nil {
		cfg.Meter = noop.NewMeterProvider().Meter("")
	}
	if cfg.Permanent == nil {
		cfg.Permanent = func(error) bool { return false }
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Topic
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	handled, err := cfg.Meter.Int64Counter("orderflow.messages.handled",
		metric.WithDescription("Messages handled, by type and outcome (ok, duplicate, failed, undecodable)."))
	if err != nil {
		return nil, err
	}
	latency, err := cfg.Meter.Float64Histogram("orderflow.handler.duration", metric.WithUnit("s"),
		metric.WithDescription("Time spent in the message handler."),
		metric.WithExplicitBucketBoundaries(queue.DurationBuckets()...))
	if err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, handled: handled, latency: latency}, nil
}

// Register adds the handler to r under its name.
func (h *Handler) Register(r Router) {
	r.Handle(h.cfg.Name, h.cfg.Topic, h.Handle)
}

// Router is the part of *queue.Router that Register needs.
type Router interface {
	Handle(name, topic string, h message.NoPublishHandlerFunc)
}

// Handle handles one message. An undecodable message is a permanent
// failure (dead-lettered at once); a failure of the service's own
// database (full, failing, locked past the busy timeout, corrupt,
// read-only: sqlitefile.StorageFailure, which the order API answers with
// a 503) is
// retried for as long as it lasts and never dead-lettered for it
// (queue.Unavailable); any other error is retried by the router unless it
// is permanent. The crash_after_commit crash point fires
// only after a message dispatch handled (not after a duplicate), so the
// redelivery of a message a crash left unacked is acked even while the
// flag stays on.
//
// A failure is not logged here: the router's retries write one record of
// it (a retry or a dead letter) with the message id, its order id and
// type (servicehost.NewRouter's LogMetadata) and the error returned.
func (h *Handler) Handle(msg *message.Message) error {
	ctx := msg.Context()
	start := h.cfg.Clock()
	m, err := contracts.Decode(msg.Metadata, msg.Payload)
	if err != nil {
		h.count(ctx, typeLabel(msg.Metadata.Get(contracts.MetadataType)), OutcomeUndecodable, start)
		return queue.Permanent(err)
	}
	log := h.cfg.Logger.With(slog.String("order_id", m.CorrelationID()), slog.String("message_id", msg.UUID),
		slog.String("type", m.MessageType()))
	if err := h.cfg.Faults.Sleep(ctx, faults.HandlerLatency); err != nil {
		return err
	}
	dup, err := h.cfg.Dispatch(ctx, log, msg.UUID, m)
	if err != nil {
		h.count(ctx, m.MessageType(), OutcomeFailed, start)
		if h.cfg.Permanent(err) {
			return queue.Permanent(err)
		}
		if sqlitefile.StorageFailure(err) {
			// The service's own database, not the message: retried for as
			// long as the outage lasts, never dead-lettered for it.
			return queue.Unavailable(err)
		}
		return err
	}
	outcome := OutcomeOK
	if dup {
		outcome = OutcomeDuplicate
		log.DebugContext(ctx, "duplicate message ignored")
	}
	h.count(ctx, m.MessageType(), outcome, start)
	if !dup {
		h.cfg.Faults.CrashPoint(ctx, faults.CrashAfterCommit)
	}
	return nil
}

// UnknownTypeLabel is the type label of the messages counted undecodable
// whose type is none of the contracts' (or missing): one series for all
// of them, however many types are made up.
const UnknownTypeLabel = "unknown"

// typeLabel is typ as a metric label: a contract's type, else
// UnknownTypeLabel.
func typeLabel(typ string) string {
	if contracts.KnownType(typ) {
		return typ
	}
	return UnknownTypeLabel
}

func (h *Handler) count(ctx context.Context, typ, outcome string, start time.Time) {
	attrs := metric.WithAttributes(attribute.String("type", typ), attribute.String("outcome", outcome))
	h.handled.Add(ctx, 1, attrs)
	h.latency.Record(ctx, h.cfg.Clock().Sub(start).Seconds(), attrs)
}
