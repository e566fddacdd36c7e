// Package adapters holds inventory's infrastructure: its SQLite database
// (stock, reservations, and the inbox and outbox tables of the queue
// module) and the unit of work that ties a state change, the processed
// message id and the emitted messages into one local transaction.
package adapters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "github.com/mattn/go-sqlite3" // database/sql driver "sqlite3"

	"github.com/orderflow/orderflow/pkg/catalog"
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
	`CREATE TABLE IF NOT EXISTS stock (
		sku              TEXT    PRIMARY KEY,
		name             TEXT    NOT NULL,
		unit_price_cents INTEGER NOT NULL,
		available        INTEGER NOT NULL CHECK (available >= 0),
		reserved         INTEGER NOT NULL CHECK (reserved >= 0),
		initial          INTEGER NOT NULL CHECK (initial >= 0),
		restocked        INTEGER NOT NULL DEFAULT 0 CHECK (restocked >= 0),
		updated_at       INTEGER NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS reservations (
		order_id    TEXT    PRIMARY KEY,
		status      TEXT    NOT NULL,
		lines       TEXT    NOT NULL,
		reason      TEXT    NOT NULL DEFAULT '',
		unavailable TEXT    NOT NULL DEFAULT '[]',
		created_at  INTEGER NOT NULL,
		updated_at  INTEGER NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS reservations_status ON reservations (status)`,
}

// Migrate creates inventory's tables if missing and seeds the catalogue: a
// SKU not yet in the database gets its initial stock; a known SKU keeps its
// stock and only takes the catalogue's name and price.
func Migrate(ctx context.Context, db *sql.DB, c catalog.Catalog) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, q := range schema {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	now := time.Now().UnixMilli()
	for _, p := range c {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO stock (sku, name, unit_price_cents, available, reserved, initial, restocked, updated_at)
			VALUES (?, ?, ?, ?, 0, ?, 0, ?)
			ON CONFLICT (sku) DO UPDATE SET name = excluded.name, unit_price_cents = excluded.unit_price_cents`,
			p.SKU, p.Name, p.UnitPriceCents, p.InitialStock, p.InitialStock, now); err != nil {
			return fmt.Errorf("migrate: seed %s: %w", p.SKU, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
