// Package outbox is a transactional outbox on a service's own SQLite file.
//
// A service changes its state and records the messages it emits in one
// local transaction: Outbox.Publisher(tx) (or Outbox.Store) inserts the
// messages through watermill-sql, wrapped in components/forwarder envelopes
// that carry their destination topic, so they exist exactly when the
// business change commits. A Forwarder, built on Watermill's
// components/forwarder, reads them with watermill-sql's subscriber and
// publishes them to the shared queue.
//
// Delivery is at-least-once: a message committed locally is forwarded even
// if the process dies before forwarding it (the forwarder resumes from the
// acked offset after a restart), and a crash between forwarding and the
// offset commit forwards a batch again. Consumers deduplicate (see the
// inbox package).
//
// # Tables
//
// watermill-sql's adapters are per topic, so the SQLite adapters keep one
// messages table and one offsets table per Watermill topic. The envelope
// funnels every destination through one Watermill topic (the forwarder
// topic), so an outbox is one messages table, "watermill_outbox" by
// default (AUTOINCREMENT offsets, never reused; the destination topic is
// inside each row's envelope), and one offsets table,
// "watermill_offsets_outbox", with a row per consumer group (the
// forwarder's). No topic column or index is needed and reads are a range
// scan of the primary key. The Forwarder deletes forwarded rows.
//
// # Database handle
//
// Open the file with mattn/go-sqlite3 and
//
//	file:PATH?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate&_synchronous=NORMAL
//
// and give the Outbox, the Forwarder and the service's writes the same
// *sql.DB with SetMaxOpenConns(1). SQLite has one writer per file anyway;
// one connection makes the Go pool the queue for it, so a business
// transaction waiting behind a forwarding batch is handed the connection
// the moment the batch commits (database/sql passes a released connection
// to a waiting request) instead of sleeping in SQLite's busy handler, and
// it cannot starve: the forwarder asks for the connection again behind it.
// A larger pool also works (writers then wait in the busy handler, up to
// _busy_timeout). Two rules avoid deadlock with one connection: code
// holding a transaction must not use the *sql.DB directly, and the
// Forwarder's destination must not wait on anything that needs this
// database (it is a separate store: the shared queue).
package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
)

// DefaultForwarderTopic is the Watermill topic (and so the table suffix) the
// outbox stores its enveloped messages under when none is configured: the
// messages table is "watermill_outbox", the offsets table
// "watermill_offsets_outbox".
const DefaultForwarderTopic = "outbox"

// Config configures an Outbox.
type Config struct {
	// ForwarderTopic is the Watermill topic every outgoing message is
	// stored under, enveloped with its real destination topic. It must
	// equal the Forwarder's. Defaults to DefaultForwarderTopic.
	ForwarderTopic string
}

func (c *Config) setDefaults() {
	if c.ForwarderTopic == "" {
		c.ForwarderTopic = DefaultForwarderTopic
	}
}

// Validate reports an unusable config.
func (c Config) Validate() error {
	return validateTopic(c.ForwarderTopic)
}

// Outbox records outgoing messages in the caller's transaction. It is safe
// for concurrent use and holds no resources: there is nothing to close.
//
// Each store also wakes a Forwarder configured with this Outbox
// (ForwarderConfig.Outbox), so it polls fast until the transaction commits
// instead of waiting for its idle poll.
type Outbox struct {
	topic  string
	schema SchemaAdapter
	stored chan struct{} // capacity 1: "something was stored since you looked"
}

// New creates the outbox tables in db if they do not exist and returns an
// Outbox that stores messages in them.
func New(ctx context.Context, db *sql.DB, cfg Config) (*Outbox, error) {
	if db == nil {
		return nil, errors.New("outbox: db is nil")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("outbox: invalid config: %w", err)
	}
	o := &Outbox{topic: cfg.ForwarderTopic, stored: make(chan struct{}, 1)}
	if err := initSchema(ctx, db, o.topic, o.schema, OffsetsAdapter{}); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return o, nil
}

// Publisher returns a publisher bound to tx: Publish inserts the messages
// into the outbox as part of tx, so they are forwarded if and only if tx
// commits. Messages of one Publish call keep their order. The publisher
// must not be used after tx ends; Close is a no-op.
func (o *Outbox) Publisher(tx *sql.Tx) message.Publisher {
	if tx == nil {
		return errPublisher{errors.New("outbox: transaction is nil")}
	}
	return o.publisher(tx)
}

// Store inserts msgs, addressed to topic, into the outbox within tx, under
// ctx. It is Publisher(tx).Publish with a context.
func (o *Outbox) Store(ctx context.Context, tx *sql.Tx, topic string, msgs ...*message.Message) error {
	if tx == nil {
		return errors.New("outbox: transaction is nil")
	}
	if err := o.publisher(ctxExecutor{ctx: ctx, tx: tx}).Publish(topic, msgs...); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

func (o *Outbox) notify() {
	select {
	case o.stored <- struct{}{}:
	default:
	}
}

func (o *Outbox) publisher(db wsql.ContextExecutor) message.Publisher {
	pub, err := wsql.NewPublisher(db, wsql.PublisherConfig{SchemaAdapter: o.schema}, nil)
	if err != nil {
		return errPublisher{fmt.Errorf("outbox: new publisher: %w", err)}
	}
	return txPublisher{forwarder.NewPublisher(pub, forwarder.PublisherConfig{ForwarderTopic: o.topic}), o}
}

// txPublisher makes an empty Publish a no-op (the SQL insert needs a row)
// and wakes the forwarder after a store.
type txPublisher struct {
	message.Publisher
	o *Outbox
}

func (p txPublisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	// What the queue would refuse for good is refused here, failing the
	// transaction that stores it: stored, it would be tried once per
	// pause of the forwarder for ever (see heldBatch).
	if err := backend.ValidateTopic(topic); err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	for _, m := range msgs {
		if err := backend.ValidateUUID(m.UUID); err != nil {
			return fmt.Errorf("to %s: %w", topic, err)
		}
	}
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	p.o.notify()
	return nil
}

type errPublisher struct{ err error }

func (p errPublisher) Publish(string, ...*message.Message) error { return p.err }
func (p errPublisher) Close() error                              { return nil }

// ctxExecutor runs the publisher's statements (which watermill-sql issues
// with context.Background) under the caller's context.
type ctxExecutor struct {
	ctx context.Context
	tx  *sql.Tx
}

func (e ctxExecutor) Exec(q string, args ...any) (sql.Result, error) {
	return e.tx.ExecContext(e.ctx, q, args...)
}

func (e ctxExecutor) Query(q string, args ...any) (*sql.Rows, error) {
	return e.tx.QueryContext(e.ctx, q, args...)
}

func (e ctxExecutor) QueryRow(q string, args ...any) *sql.Row {
	return e.tx.QueryRowContext(e.ctx, q, args...)
}

func (e ctxExecutor) ExecContext(_ context.Context, q string, args ...any) (sql.Result, error) {
	return e.tx.ExecContext(e.ctx, q, args...)
}

func (e ctxExecutor) QueryContext(_ context.Context, q string, args ...any) (*sql.Rows, error) {
	return e.tx.QueryContext(e.ctx, q, args...)
}

func (e ctxExecutor) QueryRowContext(_ context.Context, q string, args ...any) *sql.Row {
	return e.tx.QueryRowContext(e.ctx, q, args...)
}

func initSchema(ctx context.Context, db *sql.DB, topic string, schema SchemaAdapter, offsets OffsetsAdapter) error {
	qs := append(schema.SchemaInitializingQueries(topic), offsets.SchemaInitializingQueries(topic)...)
	for _, q := range qs {
		if _, err := db.ExecContext(ctx, q.Query, q.Args...); err != nil {
			return fmt.Errorf("initialize schema: %w", err)
		}
	}
	return nil
}

// validateTopic accepts what watermill-sql accepts in a table name.
func validateTopic(topic string) error {
	if topic == "" {
		return errors.New("empty forwarder topic")
	}
	for _, r := range topic {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '-' || r == '$' || r == ':' || r == '.' || r == '_'
		if !ok {
			return fmt.Errorf("forwarder topic %q: only A-Z a-z 0-9 - $ : . _ are allowed", topic)
		}
	}
	return nil
}
