package servicedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/queue/tracing"
)

// UnitOfWorkConfig configures NewUnitOfWork.
type UnitOfWorkConfig struct {
	// DB is the service's database (see Open); Inbox and Outbox keep
	// their tables in it.
	DB     *sql.DB
	Inbox  *inbox.Inbox
	Outbox *outbox.Outbox
	// ConsumerGroup scopes the inbox records (the service name).
	ConsumerGroup string
	// Propagator writes the trace context of the handler into emitted
	// messages. Default W3C Trace Context and Baggage.
	Propagator propagation.TextMapPropagator
	// BeforeCommit, when set, runs after the effects of a message's
	// command and before the commit (the crash_mid_handler fault point):
	// in Do with a message id, never for an admin request (DoRequest, or
	// Do without a message id). The fault simulates a crash the queue
	// recovers from by redelivering; a request has no redelivery, and
	// one sent again with its idempotency key would crash it again. ctx
	// is the transaction's (its span the message's).
	BeforeCommit func(ctx context.Context)
}

// Validate reports a config NewUnitOfWork cannot use.
func (c UnitOfWorkConfig) Validate() error {
	if c.DB == nil || c.Inbox == nil || c.Outbox == nil {
		return errors.New("unit of work: db, inbox and outbox are required")
	}
	if c.ConsumerGroup == "" {
		return errors.New("unit of work: consumer group is required")
	}
	return nil
}

func (c *UnitOfWorkConfig) setDefaults() {
	if c.Propagator == nil {
		c.Propagator = tracing.DefaultPropagator()
	}
	if c.BeforeCommit == nil {
		c.BeforeCommit = func(context.Context) {}
	}
}

// UnitOfWork runs the effects of one command in one local transaction,
// handing the function the transaction as T: a service's view of a *Tx
// (its store's queries plus Emit). Its Do method has the shape of the
// UnitOfWork port of a service's application layer. Safe for concurrent use.
type UnitOfWork[T any] struct {
	cfg  UnitOfWorkConfig
	view func(*Tx) T
}

// NewUnitOfWork checks cfg and returns the unit of work; view turns each
// transaction into what the service's functions take.
func NewUnitOfWork[T any](cfg UnitOfWorkConfig, view func(tx *Tx) T) (*UnitOfWork[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if view == nil {
		return nil, errors.New("unit of work: view is required")
	}
	cfg.setDefaults()
	return &UnitOfWork[T]{cfg: cfg, view: view}, nil
}

// Do runs fn, the handling of a queue message, in a transaction that
// commits if fn returns nil. With a messageID, the id is recorded in the
// same transaction and a message already processed returns duplicate=true
// without running fn; an empty messageID skips deduplication, as
// DoRequest does.
func (u *UnitOfWork[T]) Do(ctx context.Context, messageID string, fn func(ctx context.Context, tx T) error) (duplicate bool, err error) {
	if messageID == "" {
		return false, u.DoRequest(ctx, fn)
	}
	return u.cfg.Inbox.Handle(ctx, u.cfg.ConsumerGroup, messageID, func(ctx context.Context, sqlTx *sql.Tx) error {
		if err := u.run(ctx, sqlTx, messageID, fn); err != nil {
			return err
		}
		u.cfg.BeforeCommit(ctx)
		return nil
	})
}

// DoRequest runs fn, the work of an admin request, in a transaction that
// commits if fn returns nil. Nothing is deduplicated: a request that
// takes an Idempotency-Key keeps it with what it was sent with, in its
// own table, to tell a retry from a key sent again with another request
// (inventory's restock_keys). BeforeCommit does not run: a request is no
// message handler (see UnitOfWorkConfig.BeforeCommit).
func (u *UnitOfWork[T]) DoRequest(ctx context.Context, fn func(ctx context.Context, tx T) error) error {
	return InTx(ctx, u.cfg.DB, func(ctx context.Context, sqlTx *sql.Tx) error { return u.run(ctx, sqlTx, "", fn) })
}

// run runs fn on sqlTx seen as T; what it emits names causationID, the
// message being handled ("" for a request).
func (u *UnitOfWork[T]) run(ctx context.Context, sqlTx *sql.Tx, causationID string, fn func(ctx context.Context, tx T) error) error {
	t := &Tx{sql: sqlTx, outbox: u.cfg.Outbox, propagator: u.cfg.Propagator, causation: causationID}
	return fn(ctx, u.view(t))
}

// Tx is one unit of work's transaction: the SQL transaction for the
// service's store, and Emit for its outbox.
type Tx struct {
	sql        *sql.Tx
	outbox     *outbox.Outbox
	propagator propagation.TextMapPropagator
	causation  string
}

// SQL returns the SQL transaction.
func (t *Tx) SQL() *sql.Tx { return t.sql }

// Emit stores m in the outbox within the transaction: it is published if
// the transaction commits. Its causation id is the message being handled.
func (t *Tx) Emit(ctx context.Context, m contracts.Message) error {
	msg, err := NewMessage(ctx, m, t.causation, t.propagator)
	if err != nil {
		return err
	}
	return t.outbox.Store(ctx, t.sql, m.Topic(), msg)
}

// NewMessage encodes m as a Watermill message with a new UUID, the
// contract metadata, the causation id (the message being handled, if any)
// and the trace context of ctx.
func NewMessage(ctx context.Context, m contracts.Message, causationID string, prop propagation.TextMapPropagator) (*message.Message, error) {
	payload, meta, err := contracts.Encode(m)
	if err != nil {
		return nil, err
	}
	msg := message.NewMessage(queue.NewMessageID(), payload)
	for k, v := range meta {
		msg.Metadata.Set(k, v)
	}
	msg.Metadata.Set(contracts.MetadataMessageID, msg.UUID)
	if causationID != "" {
		msg.Metadata.Set(contracts.MetadataCausationID, causationID)
	}
	tracing.Config{Propagator: prop}.Inject(ctx, msg)
	return msg, nil
}

// MetadataPoison marks a message made by PoisonMessage.
const MetadataPoison = "poison"

// PoisonMessage is an unreadable message claiming to be of type typ: its
// payload is not JSON, so every consumer's decoder rejects it and the
// queue dead-letters it.
func PoisonMessage(typ string) *message.Message {
	msg := message.NewMessage(queue.NewMessageID(), []byte("\x00poison: this is not a JSON object"))
	msg.Metadata.Set(contracts.MetadataType, typ)
	msg.Metadata.Set(contracts.MetadataSchemaVersion, "1")
	msg.Metadata.Set(contracts.MetadataMessageID, msg.UUID)
	msg.Metadata.Set(MetadataPoison, "true")
	return msg
}

// EmitPoison stores one poison message (PoisonMessage) for topic in ob, in
// a transaction of its own on db, and returns its id.
func EmitPoison(ctx context.Context, db *sql.DB, ob *outbox.Outbox, topic, typ string) (string, error) {
	msg := PoisonMessage(typ)
	err := InTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
		return ob.Store(ctx, tx, topic, msg)
	})
	if err != nil {
		return "", fmt.Errorf("emit poison message: %w", err)
	}
	return msg.UUID, nil
}
