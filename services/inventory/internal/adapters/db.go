// Package adapters holds inventory's infrastructure: its tables in the
// service's SQLite database (stock, reservations, restock keys), the store over them, and
// the unit of work (pkg/servicedb's) that ties a state change, the processed
// message id and the emitted messages into one local transaction.
package adapters

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
	// The Idempotency-Keys of restocks, each with the restock it was sent
	// with (app.RestockKey); created_at in Unix milliseconds.
	`CREATE TABLE IF NOT EXISTS restock_keys (
		key        TEXT    PRIMARY KEY,
		sku        TEXT    NOT NULL,
		quantity   INTEGER NOT NULL,
		created_at INTEGER NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS restock_keys_created ON restock_keys (created_at)`,
}

// Seeding is what Migrate did with the catalogue.
type Seeding struct {
	// Stocked are the catalogue's SKUs new to the database: they got the
	// catalogue's initial stock.
	Stocked []string
	// Kept are the catalogue's SKUs the database already held: they kept
	// their stock (the catalogue's initial_stock is ignored) and took the
	// catalogue's name and price.
	Kept []string
	// NotInCatalogue are SKUs the database holds that the catalogue no
	// longer lists: they stay in stock, but the order service, which
	// prices orders from the catalogue, refuses orders for them.
	NotInCatalogue []string
}

// Migrate creates inventory's tables if missing and seeds the catalogue: a
// SKU not yet in the database gets its initial stock; a known SKU keeps its
// stock and only takes the catalogue's name and price; a SKU the catalogue
// no longer lists is left as it is. It reports which SKUs went which way,
// each list sorted.
func Migrate(ctx context.Context, db *sql.DB, c catalog.Catalog) (Seeding, error) {
	var s Seeding
	if err := c.Validate(); err != nil {
		return s, fmt.Errorf("migrate: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return s, fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, q := range schema {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return s, fmt.Errorf("migrate: %w", err)
		}
	}
	skus, err := column(ctx, tx, `SELECT sku FROM stock`)
	if err != nil {
		return s, fmt.Errorf("migrate: read SKUs: %w", err)
	}
	if err := copyLegacyRestockKeys(ctx, tx, skus); err != nil {
		return s, fmt.Errorf("migrate: %w", err)
	}
	known := map[string]bool{}
	for _, sku := range skus {
		known[sku] = true
	}
	now := time.Now().UnixMilli()
	for _, p := range c {
		if known[p.SKU] {
			s.Kept = append(s.Kept, p.SKU)
			delete(known, p.SKU)
		} else {
			s.Stocked = append(s.Stocked, p.SKU)
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO stock (sku, name, unit_price_cents, available, reserved, initial, restocked, updated_at)
			VALUES (?, ?, ?, ?, 0, ?, 0, ?)
			ON CONFLICT (sku) DO UPDATE SET name = excluded.name, unit_price_cents = excluded.unit_price_cents`,
			p.SKU, p.Name, p.UnitPriceCents, p.InitialStock, p.InitialStock, now); err != nil {
			return s, fmt.Errorf("migrate: seed %s: %w", p.SKU, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s, fmt.Errorf("migrate: %w", err)
	}
	for sku := range known {
		s.NotInCatalogue = append(s.NotInCatalogue, sku)
	}
	slices.Sort(s.Stocked)
	slices.Sort(s.Kept)
	slices.Sort(s.NotInCatalogue)
	return s, nil
}

// legacyRestockPrefix starts the inbox id under which releases before
// table restock_keys kept a keyed restock: "restock <sku> <quantity>
// <Idempotency-Key>".
const legacyRestockPrefix = "restock "

// copyLegacyRestockKeys copies into restock_keys the keyed restocks that
// earlier releases kept only as inbox ids (for as long as the inbox keeps
// an id), so that the retry of such a restock after an upgrade is still a
// replay, not a second restock. A SKU may hold blanks, so an id is read
// with skus, those inventory holds: the longest that the id starts with
// is its SKU. An earlier release took one key for several restocks: the
// newest is kept. An id it cannot read is left: no restock of this
// release's could match it.
func copyLegacyRestockKeys(ctx context.Context, tx *sql.Tx, skus []string) error {
	var inboxes int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'inbox_processed'`).Scan(&inboxes); err != nil {
		return fmt.Errorf("look for the inbox: %w", err)
	}
	if inboxes == 0 {
		return nil // a new database
	}
	rows, err := tx.QueryContext(ctx, `SELECT message_id, processed_at FROM inbox_processed
		WHERE substr(message_id, 1, ?) = ? ORDER BY processed_at DESC`,
		len(legacyRestockPrefix), legacyRestockPrefix)
	if err != nil {
		return fmt.Errorf("read restock keys of the inbox: %w", err)
	}
	type legacyKey struct {
		key, sku string
		quantity int
		at       int64
	}
	var keys []legacyKey
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return fmt.Errorf("read restock keys of the inbox: %w", err)
		}
		if sku, quantity, key, ok := parseLegacyRestockID(id, skus); ok {
			keys = append(keys, legacyKey{key: key, sku: sku, quantity: quantity, at: at})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read restock keys of the inbox: %w", err)
	}
	for _, k := range keys { // newest first: an older restock of a key is ignored
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO restock_keys (key, sku, quantity, created_at) VALUES (?, ?, ?, ?)`,
			k.key, k.sku, k.quantity, k.at); err != nil {
			return fmt.Errorf("copy restock key: %w", err)
		}
	}
	return nil
}

// parseLegacyRestockID reads an inbox id "restock <sku> <quantity> <key>"
// whose SKU is the longest of skus that fits.
func parseLegacyRestockID(id string, skus []string) (sku string, quantity int, key string, ok bool) {
	rest, found := strings.CutPrefix(id, legacyRestockPrefix)
	if !found {
		return "", 0, "", false
	}
	for _, s := range skus {
		after, found := strings.CutPrefix(rest, s+" ")
		if !found || len(s) <= len(sku) {
			continue
		}
		q, k, found := strings.Cut(after, " ")
		n, err := strconv.Atoi(q)
		if !found || err != nil || k == "" {
			continue
		}
		sku, quantity, key, ok = s, n, k, true
	}
	return sku, quantity, key, ok
}

// column returns the single text column of query's rows.
func column(ctx context.Context, tx *sql.Tx, query string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
