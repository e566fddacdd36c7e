// Package postgres is the PostgreSQL backend of the shared queue: Watermill's
// SQL Pub/Sub (watermill-sql v3.1.0, default PostgreSQL schema, offsets kept
// per consumer group) plus what the queue module needs around it: delivery
// attempts that survive restarts, a dead-letter store and statistics.
//
// How delivery works, and what follows from it:
//
//   - Every topic is a table "watermill_<topic>" (payload BYTEA, metadata
//     JSON) and every consumer group keeps one offset row per topic in
//     "watermill_offsets_<topic>". watermill-sql deletes nothing; this
//     package deletes the messages every consumer group of their topic has
//     acknowledged (Config.GCInterval). A consumer group that subscribes
//     for the first time receives what is still stored: the whole history
//     of a topic nobody has subscribed to yet, otherwise what the other
//     groups have not all acknowledged.
//   - A poll takes a transaction-level advisory lock on (topic, group) in a
//     transaction that stays open while the batch is handed out one message
//     at a time and acked (see offsetsAdapter: watermill-sql's default
//     locks the offset row instead, which was measured to stall the whole
//     server). So a consumer group handles one message at a time in the
//     whole deployment: competing consumers give fail-over, not
//     parallelism, and SubscriberConfig.Concurrency above 1 changes nothing.
//     A consumer that finds its group busy polls again later. A consumer
//     frozen while it holds the lock (SIGSTOP, network cut) loses it when
//     the server ends its idle transaction (Config.HoldTimeout).
//   - Only messages whose transaction id is below the oldest running
//     transaction id of the server (pg_snapshot_xmin) are read, so that a
//     slow publisher's message is never skipped. The flip side: while any
//     write transaction is open on the server (any database of it), messages
//     published after it began are delivered to nobody. Subscriptions of
//     this package take a transaction id only to store a batch's offset,
//     just before they commit; keep other clients' write transactions short.
//   - A nacked message is handed out again by the same subscription (after
//     its delay), in the same transaction, before any later message: a
//     retry delay holds up its consumer group, not the others.
//   - A message whose handler outlives AckDeadline is given up by
//     watermill-sql; this subscriber starts no new transaction for the
//     subscription until the handler is done, and honours a late ack (its
//     redelivery, here or at another consumer, is settled unhandled).
//   - A topic's table may hold rows that this package's publisher did not
//     write. One that cannot be read as a message (metadata that is not a
//     JSON object of strings, an empty uuid), which would fail
//     watermill-sql's every poll of its consumer groups, is dead-lettered
//     by each group instead (reason retry.ReasonUnreadable, the last error
//     naming its offset and what is wrong), without a handler, and the
//     group goes on past it (see readingSchema). The tail shows it with
//     what can be read of its metadata. Names in queue_topics are checked
//     as topic names before they become part of a table name.
//
// Delivery attempts, the first failure time and the last error are kept in
// table queue_delivery_attempts, written outside the subscription's
// transaction so that they survive a crash of the consumer, and by default
// without waiting for the disk (see Config.SynchronousDeliveryRecords). An
// ack is written there too (the subscription's next claim marks the
// previous message acked, in the same statement: one commit per message,
// not two), and the batch's offset update deletes the rows of the
// messages it acks: a batch that never commits (its consumer died) is
// delivered again, and its acked messages are then settled unhandled, their
// counts kept (see delivery). Dead letters are kept in queue_dead_letters,
// the known topics in queue_topics.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/internal/sologate"
	"github.com/orderflow/orderflow/queue/writehealth"
)

// ErrInvalidTopic is returned (wrapped, naming the topic) for a topic that
// cannot be a PostgreSQL table name.
var ErrInvalidTopic = errors.New("invalid topic name")

// ErrClosed is returned by a closed backend, publisher or subscriber.
var ErrClosed = errors.New("postgres queue is closed")

// maxGroupLen is the width of watermill-sql's consumer_group column.
const maxGroupLen = 255

// ValidateTopic reports a topic name this backend cannot store. The rule is
// the one every backend applies (backend.ValidateTopic: 1 to 45 characters
// from A-Z a-z 0-9 . _ -), so that a name that works on SQLite works here
// too; the error wraps ErrInvalidTopic.
func ValidateTopic(topic string) error {
	if err := backend.ValidateTopic(topic); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTopic, err)
	}
	return nil
}

// ddlLockKey serialises this package's CREATE TABLE statements across
// processes (concurrent CREATE TABLE IF NOT EXISTS of one table can fail).
const ddlLockKey int64 = 0x6f72646572666c6f // "orderflo"

const schemaSQL = `
CREATE TABLE IF NOT EXISTS queue_topics (
	topic      TEXT PRIMARY KEY,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS queue_delivery_attempts (
	topic           TEXT NOT NULL,
	consumer_group  TEXT NOT NULL,
	message_uuid    TEXT NOT NULL,
	attempts        INTEGER NOT NULL,
	in_flight       BOOLEAN NOT NULL,
	abandoned       BOOLEAN NOT NULL DEFAULT false,
	solo_runs       INTEGER NOT NULL DEFAULT 0,
	owner           INTEGER NOT NULL DEFAULT 0,
	claimed_in      BIGINT NOT NULL DEFAULT 0,
	acked_in        BIGINT NOT NULL DEFAULT 0,
	replay_id       TEXT NOT NULL DEFAULT '',
	delivered_at    TIMESTAMPTZ NOT NULL,
	first_failed_at TIMESTAMPTZ,
	last_failed_at  TIMESTAMPTZ,
	last_error      TEXT NOT NULL DEFAULT '',
	retry_at        TIMESTAMPTZ,
	PRIMARY KEY (topic, consumer_group, message_uuid)
);
CREATE TABLE IF NOT EXISTS queue_dead_letters (
	id              BIGSERIAL PRIMARY KEY,
	message_uuid    TEXT NOT NULL,
	topic           TEXT NOT NULL,
	consumer_group  TEXT NOT NULL,
	payload         BYTEA,
	metadata        JSON NOT NULL,
	attempts        INTEGER NOT NULL,
	last_error      TEXT NOT NULL,
	first_failed_at TIMESTAMPTZ,
	last_failed_at  TIMESTAMPTZ,
	dead_at         TIMESTAMPTZ NOT NULL,
	UNIQUE (consumer_group, message_uuid)
);
CREATE INDEX IF NOT EXISTS queue_dead_letters_topic_idx ON queue_dead_letters (topic, consumer_group);
`

// addedColumns are the columns added to the schema's tables since the
// first release, which queues made before have not: table, column and its
// definition.
var addedColumns = [][3]string{
	{"queue_delivery_attempts", "abandoned", "BOOLEAN NOT NULL DEFAULT false"},
	{"queue_delivery_attempts", "solo_runs", "INTEGER NOT NULL DEFAULT 0"},
	{"queue_delivery_attempts", "owner", "INTEGER NOT NULL DEFAULT 0"},
	{"queue_delivery_attempts", "claimed_in", "BIGINT NOT NULL DEFAULT 0"},
	{"queue_delivery_attempts", "acked_in", "BIGINT NOT NULL DEFAULT 0"},
	{"queue_delivery_attempts", "replay_id", "TEXT NOT NULL DEFAULT ''"},
	{"queue_delivery_attempts", "retry_at", "TIMESTAMPTZ"},
}

// inspectedTable and inspectedColumns are the added columns (see
// addedColumns) that what opens a queue with MustExist reads: the
// statistics' count of abandoned deliveries (owner) and of acked ones
// (acked_in).
const inspectedTable = "queue_delivery_attempts"

var inspectedColumns = []string{"owner", "acked_in"}

// alterLockTimeout bounds the wait of an ALTER TABLE of addMissingColumns
// for the transactions of processes already running on an older queue.
const alterLockTimeout = "5s"

// addMissingColumns adds addedColumns to an older queue. It looks first:
// an ALTER TABLE, even one that changes nothing, waits for every
// transaction using the table and makes every later one wait for it; and
// it waits at most alterLockTimeout for that.
func addMissingColumns(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `SET LOCAL lock_timeout = '`+alterLockTimeout+`'`); err != nil {
		return fmt.Errorf("set lock_timeout: %w", err)
	}
	for _, c := range addedColumns {
		var n int
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2`, c[0], c[1]).Scan(&n)
		if err != nil {
			return fmt.Errorf("look for column %s.%s: %w", c[0], c[1], err)
		}
		if n == 0 {
			if _, err := tx.ExecContext(ctx, `ALTER TABLE `+c[0]+` ADD COLUMN `+c[1]+` `+c[2]); err != nil {
				return fmt.Errorf("add column %s.%s: %w", c[0], c[1], err)
			}
		}
	}
	return nil
}

// Backend is the PostgreSQL queue store. It implements backend.Backend.
type Backend struct {
	cfg   Config
	db    *sql.DB // publishing, dead letters, statistics
	subDB *sql.DB // subscription transactions
	// recordsDB writes delivery records: db itself with
	// SynchronousDeliveryRecords, otherwise a pool whose sessions have
	// synchronous_commit=off.
	recordsDB *sql.DB

	// solo lets a message whose previous delivery was abandoned run
	// alone among the handlers of this backend's subscribers.
	solo *sologate.Gate
	// owner is held while the backend is open, so that other processes
	// tell its deliveries from a dead one's (see ownerLockClass); nil
	// with MustExist, which subscribes to nothing.
	owner *ownerLock

	schema  wsql.DefaultPostgreSQLSchema
	offsets offsetsAdapter
	pub     *publisher

	topicsMu sync.Mutex
	topics   map[string]bool // tables created and topic registered

	stopGC context.CancelFunc
	gcDone chan struct{}

	// health records the outcome of publishes and delivery records
	// (WriteHealth).
	health writehealth.Record

	mu     sync.Mutex
	closed bool
	subs   map[*subscriber]struct{}
	pubs   map[*publisher]struct{}
}

var _ backend.Backend = (*Backend)(nil)

// Open connects to the server named by dsn (a postgres:// or postgresql://
// URL), checks that it answers and creates the package's tables if they do
// not exist. The topic tables are created when a topic is first published
// to or subscribed to.
func Open(ctx context.Context, dsn string, cfg Config) (*Backend, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open postgres queue: invalid config: %w", err)
	}
	connCfg, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres queue: %w", err)
	}
	if connCfg.ConnectTimeout == 0 {
		connCfg.ConnectTimeout = cfg.ConnectTimeout
	}
	where := fmt.Sprintf("%s:%d/%s", connCfg.Host, connCfg.Port, connCfg.Database)

	setKeepalives(connCfg, cfg.TCPUserTimeout)
	// A subscription's transaction holds its group's lock: the server ends
	// the session of a consumer that stops sending anything (see
	// Config.HoldTimeout).
	subCfg := connCfg.Copy()
	subCfg.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(cfg.HoldTimeout().Milliseconds(), 10)

	b := &Backend{
		cfg:   cfg,
		db:    stdlib.OpenDB(*connCfg),
		subDB: stdlib.OpenDB(*subCfg),
		schema: wsql.DefaultPostgreSQLSchema{
			GeneratePayloadType: func(string) string { return "BYTEA" },
			SubscribeBatchSize:  cfg.SubscribeBatchSize,
		},
		topics: make(map[string]bool),
		subs:   make(map[*subscriber]struct{}),
		pubs:   make(map[*publisher]struct{}),
		solo:   sologate.New(cfg.aloneWait),
	}
	b.recordsDB = b.db
	if !cfg.SynchronousDeliveryRecords {
		recordsCfg := connCfg.Copy()
		recordsCfg.RuntimeParams["synchronous_commit"] = "off"
		b.recordsDB = stdlib.OpenDB(*recordsCfg)
		b.recordsDB.SetMaxOpenConns(cfg.MaxOpenConns)
		b.recordsDB.SetMaxIdleConns(cfg.MaxOpenConns)
	}
	b.db.SetMaxOpenConns(cfg.MaxOpenConns)
	b.db.SetMaxIdleConns(cfg.MaxOpenConns)
	b.subDB.SetMaxOpenConns(cfg.SubscriberMaxOpenConns)
	b.subDB.SetMaxIdleConns(cfg.SubscriberMaxOpenConns)

	if err := b.db.PingContext(ctx); err != nil {
		b.closeDBs()
		return nil, fmt.Errorf("open postgres queue: ping %s: %w", where, err)
	}
	if cfg.MustExist {
		if err := b.checkTables(ctx); err != nil {
			b.closeDBs()
			return nil, fmt.Errorf("open postgres queue %s: %w", where, err)
		}
	} else if err := b.ddl(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, schemaSQL); err != nil {
			return err
		}
		return addMissingColumns(ctx, tx)
	}); err != nil {
		b.closeDBs()
		return nil, fmt.Errorf("open postgres queue: create tables: %w", err)
	}
	if !cfg.MustExist {
		if b.owner, err = takeOwnerLock(ctx, stdlib.OpenDB(*connCfg), cfg.Logger, cfg.ownerCheckInterval(), cfg.outageReportEvery()); err != nil {
			b.closeDBs()
			return nil, fmt.Errorf("open postgres queue: %w", err)
		}
	}
	if b.pub, err = b.newPublisher(); err != nil {
		b.closeDBs()
		return nil, fmt.Errorf("open postgres queue: %w", err)
	}
	gcCtx, stop := context.WithCancel(context.Background())
	b.stopGC, b.gcDone = stop, make(chan struct{})
	if cfg.MustExist {
		close(b.gcDone)
	} else {
		go b.collectGarbage(gcCtx)
	}
	return b, nil
}

// queueTables are the tables Open creates, which make a schema a queue.
var queueTables = []string{"queue_topics", "queue_delivery_attempts", "queue_dead_letters"}

// checkTables reports the first of queueTables missing from the search
// path, as Config.MustExist wants, without creating anything.
func (b *Backend) checkTables(ctx context.Context) error {
	for _, table := range queueTables {
		var found bool
		if err := b.db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&found); err != nil {
			return fmt.Errorf("look for table %s: %w", table, err)
		}
		if !found {
			return fmt.Errorf("not a queue: table %s missing (in the search path %s)", table, b.searchPath(ctx))
		}
	}
	// A queue made by an older release lacks columns that Open (without
	// MustExist) adds. The statistics read two of them; a queue without
	// those is refused here, rather than left to fail on a statement.
	// The table is the one to_regclass found along the search path, as
	// above, whatever schema it is in.
	for _, col := range inspectedColumns {
		var found bool
		if err := b.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute
			WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped)`,
			inspectedTable, col).Scan(&found); err != nil {
			return fmt.Errorf("look for column %s.%s: %w", inspectedTable, col, err)
		}
		if !found {
			return fmt.Errorf("queue made by an older release: column %s.%s missing; "+
				"start a service of this release on it once, which adds the columns", inspectedTable, col)
		}
	}
	return nil
}

// searchPath is the session's search_path, for error messages.
func (b *Backend) searchPath(ctx context.Context) string {
	var path string
	if err := b.db.QueryRowContext(ctx, `SELECT current_setting('search_path')`).Scan(&path); err != nil {
		return "?"
	}
	return path
}

// ValidateDSN reports what is wrong with dsn as the URL of a PostgreSQL
// queue, without connecting: what Open would refuse before it dials. Its
// errors never repeat the DSN, which may hold a password.
func ValidateDSN(dsn string) error {
	_, err := parseDSN(dsn)
	return err
}

// parseDSN accepts postgres:// and postgresql:// URLs only, so that a
// queue URL of another scheme fails here with a clear message. Errors
// never repeat the DSN, which may hold a password.
func parseDSN(dsn string) (*pgx.ConnConfig, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, errors.New("dsn is not a URL (want postgres://user@host:port/database)")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("dsn scheme is %q, want postgres://", u.Scheme)
	}
	// url.Parse lowers the scheme, pgx does not: given "POSTGRES://…" it
	// would read the whole URL as one key=value setting (and send it, the
	// password with it, to the default server). Hand it the scheme lowered.
	if scheme, rest, ok := strings.Cut(dsn, "://"); ok && scheme != u.Scheme {
		dsn = u.Scheme + "://" + rest
	}
	connCfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %w", err)
	}
	forceUTC(connCfg)
	return connCfg, nil
}

// TCP keepalives of the queue's connections, on both ends, unless the URL
// sets the server's: a peer that vanished (a host cut off by the network)
// is noticed after about 15s + 3 × 5s instead of the system's default,
// hours on Linux for the server's end.
const (
	keepaliveIdle     = 15 * time.Second
	keepaliveInterval = 5 * time.Second
	keepaliveCount    = 3
)

// setKeepalives turns on TCP keepalives for c's connections, on the
// client's end (the dialer) and on the server's (tcp_keepalives_*
// settings, where the URL gives none; the server ignores them on Unix
// sockets), and on Linux sets the client's TCP_USER_TIMEOUT to
// userTimeout (see Config.TCPUserTimeout; not set when negative).
func setKeepalives(c *pgx.ConnConfig, userTimeout time.Duration) {
	d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: keepaliveIdle, Interval: keepaliveInterval, Count: keepaliveCount,
	}}
	if userTimeout > 0 {
		d.Control = userTimeoutControl(userTimeout)
	}
	c.DialFunc = d.DialContext
	for k, v := range map[string]string{
		"tcp_keepalives_idle":     strconv.Itoa(int(keepaliveIdle / time.Second)),
		"tcp_keepalives_interval": strconv.Itoa(int(keepaliveInterval / time.Second)),
		"tcp_keepalives_count":    strconv.Itoa(keepaliveCount),
	} {
		if _, ok := c.RuntimeParams[k]; !ok {
			c.RuntimeParams[k] = v
		}
	}
}

// forceUTC makes every session of the backend use TimeZone UTC, whatever
// the URL (?timezone=), the environment (PGTZ) or the server's default
// say. watermill-sql's created_at is a timestamp without time zone that
// the publisher's session fills with its local time, and statistics and
// tail read it in theirs: two sessions in different zones would see a
// message published hours in the past or the future.
func forceUTC(c *pgx.ConnConfig) {
	for k := range c.RuntimeParams {
		if strings.EqualFold(k, "timezone") {
			delete(c.RuntimeParams, k)
		}
	}
	c.RuntimeParams["timezone"] = "UTC"
}

// ddl runs fn in a transaction that holds the package's DDL advisory lock.
func (b *Backend) ddl(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
			return
		}
		err = tx.Commit()
	}()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, ddlLockKey); err != nil {
		return fmt.Errorf("take ddl lock: %w", err)
	}
	return fn(tx)
}

// ensureTopic creates the topic's message and offsets tables and registers
// the topic in queue_topics, once per backend.
func (b *Backend) ensureTopic(ctx context.Context, topic string) error {
	if err := ValidateTopic(topic); err != nil {
		return err
	}
	b.topicsMu.Lock()
	defer b.topicsMu.Unlock()
	if b.topics[topic] {
		return nil
	}
	queries := append(b.schema.SchemaInitializingQueries(topic), b.offsets.SchemaInitializingQueries(topic)...)
	err := b.ddl(ctx, func(tx *sql.Tx) error {
		for _, q := range queries {
			if _, err := tx.ExecContext(ctx, q.Query, q.Args...); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO queue_topics (topic) VALUES ($1) ON CONFLICT DO NOTHING`, topic)
		return err
	})
	if err != nil {
		return fmt.Errorf("create tables of topic %q: %w", topic, err)
	}
	b.topics[topic] = true
	return nil
}

// Name returns "postgres".
func (b *Backend) Name() string { return "postgres" }

// Publisher returns the backend's shared publisher. Closing it stops
// publishing through it; Close of the backend closes it too.
func (b *Backend) Publisher() message.Publisher { return b.pub }

// NewPublisher returns a publisher of its own over the backend's
// connections, for a component that wants to close its publisher without
// affecting others. Close it before the backend (the backend closes any
// that are left).
func (b *Backend) NewPublisher() (message.Publisher, error) {
	return b.newPublisher()
}

// DeadLetters returns the dead-letter store, table queue_dead_letters.
func (b *Backend) DeadLetters() backend.DeadLetterStore { return deadLetters{db: b.db} }

// Inspector returns the statistics reader.
func (b *Backend) Inspector() backend.Inspector { return inspector{b: b} }

// Close closes the publishers and subscribers still open (waiting for
// their goroutines), then the connections. It is idempotent.
func (b *Backend) Close() error { return b.Shutdown(context.Background()) }

// Shutdown is Close, bounded by ctx: when ctx ends, the subscriptions still
// storing their offsets are given up on as at Config.CloseTimeout (their
// queries cancelled; the acked part of a batch is delivered again, and the
// inboxes drop it), and so are their bookkeeping writes (a message whose
// ack was not recorded there is handled again, which the inbox absorbs);
// Publish calls still waiting for the server are not waited for (they
// fail or end on their own, when the server answers or TCP gives up on it;
// nothing they did not report as done is stored as done).
func (b *Backend) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.stopGC()
	subs := make([]*subscriber, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	pubs := make([]*publisher, 0, len(b.pubs))
	for p := range b.pubs {
		pubs = append(pubs, p)
	}
	b.mu.Unlock()

	var errs []error
	for _, s := range subs {
		errs = append(errs, s.shutdown(ctx))
	}
	errs = append(errs, closePublishers(ctx, pubs))
	<-b.gcDone
	errs = append(errs, b.closeDBs())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close postgres queue: %w", err)
	}
	return nil
}

// closePublishers closes pubs, each waiting for its running Publish calls,
// until ctx ends: then it returns without waiting for the rest (a Publish
// on a connection to a server that does not answer ends when TCP gives up
// on it, and its publisher's close with it).
func closePublishers(ctx context.Context, pubs []*publisher) error {
	if len(pubs) == 0 {
		return nil
	}
	errc := make(chan error, len(pubs))
	for _, p := range pubs {
		go func() { errc <- p.Close() }()
	}
	var errs []error
	for range pubs {
		select {
		case err := <-errc:
			errs = append(errs, err)
		case <-ctx.Done():
			return errors.Join(append(errs, errors.New("publishes still waiting for the server were left to end on their own"))...)
		}
	}
	return errors.Join(errs...)
}

func (b *Backend) closeDBs() error {
	err := errors.Join(b.subDB.Close(), b.db.Close())
	if b.owner != nil {
		err = errors.Join(err, b.owner.close())
	}
	if b.recordsDB != b.db {
		err = errors.Join(err, b.recordsDB.Close())
	}
	return err
}

// track registers a publisher or subscriber so that Close can close it;
// it fails once the backend is closed.
func (b *Backend) track(p *publisher, s *subscriber) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if p != nil {
		b.pubs[p] = struct{}{}
	}
	if s != nil {
		b.subs[s] = struct{}{}
	}
	return nil
}

func (b *Backend) untrack(p *publisher, s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pubs, p)
	delete(b.subs, s)
}

// bookkeepingTimeout bounds one write to queue_delivery_attempts; such
// writes run detached from the caller's cancellation so that an ack is not
// lost to a shutdown that races it.
const bookkeepingTimeout = 10 * time.Second

func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
}
