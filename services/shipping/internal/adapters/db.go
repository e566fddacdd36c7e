// Package adapters holds shipping's infrastructure: its table in the
// service's SQLite database (shipments), the store over it, the unit of work
// (pkg/servicedb's) that ties a state change, the processed message id and
// the emitted messages into one local transaction, and the simulated carrier
// with its books.
package adapters

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/orderflow/orderflow/pkg/providersim"
)

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
	return providersim.Migrate(ctx, db) // the simulated carrier's books
}
