package adapters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/queue/tracing"
	"github.com/orderflow/orderflow/services/shipping/internal/app"
)

// UnitOfWork implements app.UnitOfWork with the inbox (deduplication) and
// the outbox (emitted messages) on the service's database.
type UnitOfWork struct {
	db           *sql.DB
	inbox        *inbox.Inbox
	outbox       *outbox.Outbox
	group        string
	propagator   propagation.TextMapPropagator
	beforeCommit func()
}

// UnitOfWorkConfig configures NewUnitOfWork.
type UnitOfWorkConfig struct {
	DB     *sql.DB
	Inbox  *inbox.Inbox
	Outbox *outbox.Outbox
	// ConsumerGroup scopes the inbox records (the service name).
	ConsumerGroup string
	// Propagator writes the trace context of the handler into emitted
	// messages. Default W3C Trace Context and Baggage.
	Propagator propagation.TextMapPropagator
	// BeforeCommit, when set, runs after the command's effects and before
	// the commit (the crash_mid_handler fault point).
	BeforeCommit func()
}

// NewUnitOfWork checks cfg and returns the unit of work.
func NewUnitOfWork(cfg UnitOfWorkConfig) (*UnitOfWork, error) {
	if cfg.DB == nil || cfg.Inbox == nil || cfg.Outbox == nil {
		return nil, errors.New("unit of work: db, inbox and outbox are required")
	}
	if cfg.ConsumerGroup == "" {
		return nil, errors.New("unit of work: consumer group is required")
	}
	if cfg.Propagator == nil {
		cfg.Propagator = tracing.DefaultPropagator()
	}
	if cfg.BeforeCommit == nil {
		cfg.BeforeCommit = func() {}
	}
	return &UnitOfWork{db: cfg.DB, inbox: cfg.Inbox, outbox: cfg.Outbox, group: cfg.ConsumerGroup,
		propagator: cfg.Propagator, beforeCommit: cfg.BeforeCommit}, nil
}

// Do implements app.UnitOfWork.
func (u *UnitOfWork) Do(ctx context.Context, messageID string, fn func(ctx context.Context, tx app.Tx) error) (bool, error) {
	run := func(ctx context.Context, sqlTx *sql.Tx) error {
		if err := fn(ctx, &tx{Store: Store{q: sqlTx}, tx: sqlTx, u: u, causation: messageID}); err != nil {
			return err
		}
		u.beforeCommit()
		return nil
	}
	if messageID != "" {
		return u.inbox.Handle(ctx, u.group, messageID, run)
	}
	return false, inTx(ctx, u.db, run)
}

// inTx runs fn in a transaction committed if fn returns nil.
func inTx(ctx context.Context, db *sql.DB, fn func(ctx context.Context, tx *sql.Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
			return
		}
		if cerr := tx.Commit(); cerr != nil {
			err = fmt.Errorf("commit: %w", cerr)
		}
	}()
	return fn(ctx, tx)
}

type tx struct {
	Store
	tx        *sql.Tx
	u         *UnitOfWork
	causation string
}

// Emit implements app.Tx: it stores m in the outbox within the transaction.
func (t *tx) Emit(ctx context.Context, m contracts.Message) error {
	msg, err := NewMessage(ctx, m, t.causation, t.u.propagator)
	if err != nil {
		return err
	}
	return t.u.outbox.Store(ctx, t.tx, m.Topic(), msg)
}

// NewMessage encodes m as a Watermill message with a new UUID, the
// contract metadata, the causation id (the message being handled, if any)
// and the trace context of ctx.
func NewMessage(ctx context.Context, m contracts.Message, causationID string, prop propagation.TextMapPropagator) (*message.Message, error) {
	payload, meta, err := contracts.Encode(m)
	if err != nil {
		return nil, err
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
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

// PoisonMessage is an unreadable message claiming to be of type typ: its
// payload is not JSON, so every consumer's decoder rejects it and the
// queue dead-letters it.
func PoisonMessage(typ string) *message.Message {
	msg := message.NewMessage(watermill.NewUUID(), []byte("\x00poison: this is not a JSON object"))
	msg.Metadata.Set(contracts.MetadataType, typ)
	msg.Metadata.Set(contracts.MetadataSchemaVersion, "1")
	msg.Metadata.Set(contracts.MetadataMessageID, msg.UUID)
	msg.Metadata.Set("poison", "true")
	return msg
}

// EmitPoison stores one poison message for topic in the outbox, in its own
// transaction.
func (u *UnitOfWork) EmitPoison(ctx context.Context, topic, typ string) (string, error) {
	msg := PoisonMessage(typ)
	err := inTx(ctx, u.db, func(ctx context.Context, tx *sql.Tx) error {
		return u.outbox.Store(ctx, tx, topic, msg)
	})
	if err != nil {
		return "", fmt.Errorf("emit poison message: %w", err)
	}
	return msg.UUID, nil
}
