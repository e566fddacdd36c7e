// Package adapters holds the order service's storage, all in one SQLite file
// of its own: the event store (optimistic concurrency on
// (stream_id, version)), the projections (order list and status counts),
// the idempotency keys of POST /orders and the deadline index of the saga's
// step timeouts. Every write of a decision (events, projections, deadline,
// outbox messages, inbox record) happens in one local transaction.
package adapters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" database/sql driver

	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/queue/sqlitefile"
)

// DB is the order service's database: Writer has a single connection (SQLite
// has one writer per file; the outbox, the inbox and the event store share
// it, see the outbox package), Reader a small pool of read-only connections
// for queries, which WAL lets run beside the writer.
type DB struct {
	Writer *sql.DB
	Reader *sql.DB
	Path   string
	// stmts are the writer's statements, prepared once (see stmtCache).
	stmts *stmtCache
}

// DBConfig tunes OpenDB. Zero values take the defaults.
type DBConfig struct {
	// WriterConns is the writer pool size. Default 1 (recommended: the Go
	// pool is then the queue for the write lock). Larger pools wait in
	// SQLite's busy handler instead; the tests use both.
	WriterConns int
	// ReaderConns is the reader pool size. Default 4.
	ReaderConns int
	// Synchronous is SQLite's synchronous pragma, NORMAL or FULL.
	// Default NORMAL.
	Synchronous string
}

func (c *DBConfig) setDefaults() {
	if c.WriterConns == 0 {
		c.WriterConns = 1
	}
	if c.ReaderConns == 0 {
		c.ReaderConns = 4
	}
	if c.Synchronous == "" {
		c.Synchronous = "NORMAL"
	}
}

// Validate reports an unusable config.
func (c DBConfig) Validate() error {
	var errs []error
	if c.WriterConns < 1 || c.ReaderConns < 1 {
		errs = append(errs, errors.New("pool sizes must be positive"))
	}
	if err := CheckSynchronous(c.Synchronous); err != nil {
		errs = append(errs, fmt.Errorf("synchronous: %w", err))
	}
	return errors.Join(errs...)
}

// CheckSynchronous reports a synchronous pragma the database is not opened
// with: NORMAL or FULL, in any case.
func CheckSynchronous(s string) error {
	if v := strings.ToUpper(s); v != "NORMAL" && v != "FULL" {
		return fmt.Errorf("must be NORMAL or FULL, got %q", s)
	}
	return nil
}

// OpenDB opens (creating if needed, with sqlitefile's page size) the
// database file at path, with WAL, a busy timeout and immediate write
// transactions, and creates the tables of this package. The outbox and
// inbox packages create theirs.
func OpenDB(ctx context.Context, path string, cfg DBConfig) (*DB, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open order database: %w", err)
	}
	if err := servicedb.Create(ctx, path); err != nil {
		return nil, fmt.Errorf("open order database: %w", sqlitefile.Explain(path, err))
	}
	writer := servicedb.OpenWriter(path, strings.ToUpper(cfg.Synchronous))
	writer.SetMaxOpenConns(cfg.WriterConns)
	writer.SetMaxIdleConns(cfg.WriterConns)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	if err := checkPragmas(ctx, writer); err != nil {
		return nil, errors.Join(fmt.Errorf("open order database %s: %w", path, sqlitefile.Explain(path, err)), writer.Close())
	}
	if err := migrate(ctx, writer); err != nil {
		return nil, errors.Join(fmt.Errorf("open order database %s: %w", path, sqlitefile.Explain(path, err)), writer.Close())
	}
	stmts, err := prepareStmts(ctx, writer, writerStmts)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open order database %s: %w", path, err), writer.Close())
	}
	reader, err := sql.Open("sqlite3", sqlitefile.DSN(path, url.Values{
		"_busy_timeout":    {"10000"},
		"_query_only":      {"1"},
		"_stmt_cache_size": {strconv.Itoa(servicedb.StatementCacheSize)},
	}))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open order database: %w", err), stmts.close(), writer.Close())
	}
	reader.SetMaxOpenConns(cfg.ReaderConns)
	reader.SetMaxIdleConns(cfg.ReaderConns)
	return &DB{Writer: writer, Reader: reader, Path: path, stmts: stmts}, nil
}

// checkPragmas proves that the DSN took effect.
func checkPragmas(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	var busy int
	if err := db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil {
		return fmt.Errorf("read busy_timeout: %w", err)
	}
	if busy <= 0 {
		return fmt.Errorf("busy_timeout is %d, want > 0", busy)
	}
	return nil
}

// Close closes both pools.
func (db *DB) Close() error {
	return errors.Join(db.Reader.Close(), db.stmts.close(), db.Writer.Close())
}

// Ping checks that both pools answer.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.Writer.PingContext(ctx); err != nil {
		return fmt.Errorf("order database writer: %w", err)
	}
	if err := db.Reader.PingContext(ctx); err != nil {
		return fmt.Errorf("order database reader: %w", err)
	}
	return nil
}

// schema is this package's tables. Times are Unix milliseconds set by Go.
var schema = []string{
	// The event store. position orders all events (projection rebuilds);
	// UNIQUE (stream_id, version) is the optimistic concurrency check.
	`CREATE TABLE IF NOT EXISTS events (
		position    INTEGER PRIMARY KEY AUTOINCREMENT,
		stream_id   TEXT    NOT NULL,
		version     INTEGER NOT NULL CHECK (version > 0),
		type        TEXT    NOT NULL,
		data        TEXT    NOT NULL,
		metadata    TEXT    NOT NULL,
		recorded_at INTEGER NOT NULL,
		UNIQUE (stream_id, version)
	)`,
	// The order list projection, one row per order.
	`CREATE TABLE IF NOT EXISTS order_view (
		order_id         TEXT    PRIMARY KEY,
		customer_id      TEXT    NOT NULL,
		status           TEXT    NOT NULL,
		reason           TEXT    NOT NULL,
		items            TEXT    NOT NULL,
		currency         TEXT    NOT NULL,
		total_cents      INTEGER NOT NULL,
		shipping_address TEXT    NOT NULL,
		saga_step        TEXT    NOT NULL,
		awaiting         TEXT    NOT NULL,
		deadline         INTEGER,
		payment_id       TEXT    NOT NULL,
		shipment_id      TEXT    NOT NULL,
		carrier          TEXT    NOT NULL,
		tracking_number  TEXT    NOT NULL,
		placed_at        INTEGER NOT NULL,
		updated_at       INTEGER NOT NULL,
		finished_at      INTEGER,
		trace_id         TEXT    NOT NULL,
		version          INTEGER NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS order_view_placed ON order_view (placed_at DESC, order_id DESC)`,
	`CREATE INDEX IF NOT EXISTS order_view_status_placed ON order_view (status, placed_at DESC, order_id DESC)`,
	// The status counts projection.
	`CREATE TABLE IF NOT EXISTS order_status_counts (
		status TEXT    PRIMARY KEY,
		count  INTEGER NOT NULL
	)`,
	// Idempotency-Key of POST /orders -> the order it placed. Keys older
	// than the service's retention are purged by created_at
	// (Store.PurgeIdempotencyKeysBefore).
	`CREATE TABLE IF NOT EXISTS idempotency_keys (
		key          TEXT    PRIMARY KEY,
		request_hash TEXT    NOT NULL,
		order_id     TEXT    NOT NULL,
		created_at   INTEGER NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at)`,
	// The saga's next step deadline per order, with the trace context of
	// the order's latest decision. Derived from the stream like the
	// projections, in the same transaction. trace_flags (W3C, hex; ""
	// counts as sampled) is added by columnMigrations to files made
	// before it existed.
	`CREATE TABLE IF NOT EXISTS order_deadlines (
		order_id    TEXT    PRIMARY KEY,
		due_at      INTEGER NOT NULL,
		trace_id    TEXT    NOT NULL,
		span_id     TEXT    NOT NULL,
		trace_flags TEXT    NOT NULL DEFAULT ''
	)`,
	// By due time, then order id: the timeout loop pages through the due
	// deadlines in that order (an index on due_at alone made every page
	// sort all the deadlines still due). It replaced order_deadlines_due.
	`DROP INDEX IF EXISTS order_deadlines_due`,
	`CREATE INDEX IF NOT EXISTS order_deadlines_due_order ON order_deadlines (due_at, order_id)`,
}

// columnMigrations are the columns added to a table after files with the
// table existed: added when missing, in order, after schema.
var columnMigrations = []struct{ table, column, definition string }{
	{"order_deadlines", "trace_flags", `TEXT NOT NULL DEFAULT ''`},
}

func migrate(ctx context.Context, db *sql.DB) error {
	for _, q := range schema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	for _, m := range columnMigrations {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`, m.table, m.column).Scan(&n); err != nil {
			return fmt.Errorf("migrate %s.%s: %w", m.table, m.column, err)
		}
		if n > 0 {
			continue
		}
		// Identifiers cannot be bound; these are the constants above.
		if _, err := db.ExecContext(ctx, `ALTER TABLE `+m.table+` ADD COLUMN `+m.column+` `+m.definition); err != nil {
			return fmt.Errorf("migrate %s.%s: %w", m.table, m.column, err)
		}
	}
	return nil
}
