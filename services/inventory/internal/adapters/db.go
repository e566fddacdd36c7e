// Package adapters holds inventory's infrastructure: its tables in the
// service's SQLite database (stock, reservations), the store over them, and
// the unit of work (pkg/servicedb's) that ties a state change, the processed
// message id and the emitted messages into one local transaction.
package adapters

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/pkg/catalog"
)

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
