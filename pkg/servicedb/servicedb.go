// Package servicedb holds what every orderflow service does with its own
// SQLite database: opening the file the way the queue module's outbox and
// inbox want it, running a function in a transaction, and the unit of work
// that ties one command's state change, the id of the message that caused it
// (the inbox) and the messages it emits (the outbox) into one local
// transaction.
//
// A service keeps its own tables and queries; it gives NewUnitOfWork a
// function that views a *Tx through its own store, so its application layer
// sees only its own Tx interface:
//
//	uow, err := servicedb.NewUnitOfWork(cfg, func(t *servicedb.Tx) app.Tx {
//		return tx{Store: Store{q: t.SQL()}, Tx: t} // Store's queries + t.Emit
//	})
//	dup, err := uow.Do(ctx, msg.UUID, func(ctx context.Context, tx app.Tx) error { … })
package servicedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	_ "github.com/mattn/go-sqlite3" // database/sql driver "sqlite3"

	"github.com/orderflow/orderflow/queue/sqlitefile"
)

// Open opens (creating it and its directory if needed, a new file with
// sqlitefile's page size) a service's own SQLite file as the outbox
// package recommends: WAL, a busy timeout,
// IMMEDIATE transactions, foreign keys, synchronous=NORMAL and one
// connection, so that writers queue in the Go pool. The connection keeps
// the statements it ran prepared (StatementCacheSize), so that the
// service's, the inbox's and the outbox's queries are compiled once, not
// on every message.
func Open(ctx context.Context, path string) (*sql.DB, error) {
	if err := Create(ctx, path); err != nil {
		return nil, fmt.Errorf("open database: %w", sqlitefile.Explain(path, err))
	}
	db := OpenWriter(path, "NORMAL")
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open database %s: %w", path, sqlitefile.Explain(path, err)), db.Close())
	}
	return db, nil
}

// Create makes path's directory (its owner's alone, 0700, if it is new)
// and, if the file is new, gives it the settings only a new file can
// choose (sqlitefile.Prepare: 2 KiB pages, WAL, permissions
// sqlitefile.NewFileMode). An existing directory or file is left as it is.
func Create(ctx context.Context, path string) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	_, err := sqlitefile.Prepare(ctx, path, sqlitefile.Options{})
	return err
}

// WriterDSN is the mattn/go-sqlite3 connection string of a service
// database for writing: WAL, a 10 s busy timeout, IMMEDIATE transactions,
// foreign keys, the given synchronous mode (NORMAL or FULL) and
// StatementCacheSize prepared statements kept per connection.
func WriterDSN(path, synchronous string) string {
	return sqlitefile.DSN(path, url.Values{
		"_journal_mode":    {"WAL"},
		"_busy_timeout":    {"10000"},
		"_txlock":          {"immediate"},
		"_synchronous":     {synchronous},
		"_foreign_keys":    {"on"},
		"_stmt_cache_size": {strconv.Itoa(StatementCacheSize)},
	})
}

// OpenWriter is the database/sql handle of a service database for
// writing: connections with WriterDSN's settings and a WAL of
// WALAutocheckpointPages. Like sql.Open it opens nothing yet; the caller
// sizes the pool.
func OpenWriter(path, synchronous string) *sql.DB {
	return sqlitefile.OpenDB(WriterDSN(path, synchronous),
		"wal_autocheckpoint = "+strconv.Itoa(WALAutocheckpointPages))
}

// WALAutocheckpointPages is the length of a service database's
// write-ahead log, in pages, at which the commit that reaches it copies
// the log into the database file (SQLite's default is 1,000). A checkpoint
// writes each page the log holds once, however many commits changed it,
// and syncs both files: with 1,000 pages (2 MB) the order service
// checkpointed several times a second, rewriting the same index and
// table pages each time; with 10,000 (about 20 MB of log per service;
// more only while a long read keeps the log from starting over)
// it writes half as many pages to its database file and syncs a tenth as
// often. Measured end to end (docs/benchmarks.md, three alternating
// rounds): the order service's CPU per order 9–13 % lower. A crash costs
// nothing more than a longer log to read at the next start.
const WALAutocheckpointPages = 10000

// StatementCacheSize is how many prepared statements each connection of a
// service database keeps (mattn/go-sqlite3's _stmt_cache_size, a
// least-recently-used cache keyed by the query text): more than the
// distinct queries a service, its inbox and its outbox run per message.
const StatementCacheSize = 64

// InTx runs fn in a transaction of db, committed if fn returns nil and
// rolled back otherwise. If fn panics, the transaction is rolled back and
// the panic goes on up the stack. ctx bounds the wait for the connection;
// the transaction and fn's statements then run without its cancellation:
// once fn succeeded, a cancelled ctx cannot undo it, and mattn/go-sqlite3
// runs every Exec under a cancellable context in a goroutine of its own
// (to interrupt it), a goroutine per statement for a transaction that
// takes milliseconds.
func InTx(ctx context.Context, db *sql.DB, fn func(ctx context.Context, tx *sql.Tx) error) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("get connection: %w", err)
	}
	defer conn.Close()
	ctx = context.WithoutCancel(ctx)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { err = FinishTx(err, tx, recover()) }()
	return fn(ctx, tx)
}

// FinishTx ends tx for a function that ran its work in it, as that
// function's deferred call:
//
//	defer func() { err = servicedb.FinishTx(err, tx, recover()) }()
//
// It commits if err is nil and rolls back otherwise. During a panic err is
// still nil, so the recovered value, not err, decides: the partial work is
// rolled back and the panic re-raised.
func FinishTx(err error, tx *sql.Tx, panicked any) error {
	if panicked != nil {
		_ = tx.Rollback()
		panic(panicked)
	}
	if err != nil {
		if rbErr := tx.Rollback(); rbErr != nil {
			return errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Querier is what a service's store needs from a *sql.DB or a *sql.Tx, so
// that one store reads and writes through a transaction or, for queries,
// the database.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// CountByKey runs query, whose rows are (key, count) such as
// "SELECT status, COUNT(*) FROM t GROUP BY status", and returns the counts by
// key. what names the query in errors ("count shipments: …").
func CountByKey[K ~string](ctx context.Context, q Querier, what, query string, args ...any) (map[K]int, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := map[K]int{}
	for rows.Next() {
		var key string
		var n int
		if err := rows.Scan(&key, &n); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out[K(key)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
