// Package adapters holds shipping's infrastructure: its SQLite database
// (shipments, and the inbox and outbox tables of the queue module), the
// unit of work that ties a state change, the processed message id and the
// emitted messages into one local transaction, and the simulated carrier.
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
	`CREATE TABLE IF NOT EXISTS shipments (
		order_id        TEXT    PRIMARY KEY,
		shipment_id     TEXT    UNIQUE,
		status          TEXT    NOT NULL,
		carrier         TEXT    NOT NULL DEFAULT '',
		tracking_number TEXT    NOT NULL DEFAULT '',
		lines           TEXT    NOT NULL DEFAULT '[]',
		address         TEXT    NOT NULL DEFAULT '{}',
		reason          TEXT    NOT NULL DEFAULT '',
		created_at      INTEGER NOT NULL,
		updated_at      INTEGER NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS shipments_status ON shipments (status)`,
}

// Migrate creates shipping's tables if missing.
func Migrate(ctx context.Context, db *sql.DB) error {
	for _, q := range schema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}
