// Package adapters holds payment's infrastructure: its tables in the
// service's SQLite database (payments, the ledger), the store over them, the
// unit of work (pkg/servicedb's) that ties a state change, the processed
// message id and the emitted messages into one local transaction, and the
// simulated gateway with its books.
package adapters

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/orderflow/orderflow/pkg/providersim"
)

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
	return providersim.Migrate(ctx, db) // the simulated gateway's books
}
