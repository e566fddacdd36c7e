// Package adapters holds payment's infrastructure: its SQLite database
// (payments, the ledger, and the inbox and outbox tables of the queue
// module), the unit of work that ties a state change, the processed message
// id and the emitted messages into one local transaction, and the simulated
// gateway.
package adapters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	_ "github.com/mattn/go-sqlite3" // database/sql driver "sqlite3"
)

// OpenDB opens (creating it if needed) the service's own SQLite file, as
// the outbox package recommends: WAL, a busy timeout, IMMEDIATE
// transactions and one connection, so writers queue in the Go pool.
func OpenDB(ctx context.Context, path string) (*sql.DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
	}
	db, err := sql.Open("sqlite3", "file:"+path+
		"?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate&_synchronous=NORMAL&_foreign_keys=on")
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open database %s: %w", path, err), db.Close())
	}
	return db, nil
}

var schema = []string{
	`CREATE TABLE IF NOT EXISTS payments (
		order_id     TEXT    PRIMARY KEY,
		payment_id   TEXT    UNIQUE,
		customer_id  TEXT    NOT NULL DEFAULT '',
		amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
		currency     TEXT    NOT NULL,
		status       TEXT    NOT NULL,
		reason       TEXT    NOT NULL DEFAULT '',
		created_at   INTEGER NOT NULL,
		updated_at   INTEGER NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS payments_status ON payments (status)`,
	// One charge and at most one refund per payment, enforced by the
	// database as well as by the domain.
	`CREATE TABLE IF NOT EXISTS ledger (
		id           INTEGER PRIMARY KEY AUTOINCREMENT,
		payment_id   TEXT    NOT NULL,
		order_id     TEXT    NOT NULL,
		kind         TEXT    NOT NULL CHECK (kind IN ('charge', 'refund')),
		amount_cents INTEGER NOT NULL,
		currency     TEXT    NOT NULL,
		recorded_at  INTEGER NOT NULL,
		UNIQUE (payment_id, kind)
	)`,
	`CREATE INDEX IF NOT EXISTS ledger_order ON ledger (order_id)`,
}

// Migrate creates payment's tables if missing.
func Migrate(ctx context.Context, db *sql.DB) error {
	for _, q := range schema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}
