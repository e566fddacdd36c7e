package adapters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The statements the writer runs for every decision. They are prepared once
// on the writer pool when the database is opened (stmtCache) instead of
// being compiled by SQLite on every call; the strings are the cache keys.
//
// A parameter that SQLite's planner looks at while it plans (LIMIT ?, and
// here the stream id beside MAX()) marks the statement to be compiled
// again whenever its parameters are cleared, and mattn/go-sqlite3 clears
// them after every run: written "+?", the value is the same but the
// planner does not look at it. qStreamVersion ran ~1,000 times a second
// under load, each time re-prepared, 5 % of the order service's CPU.
const (
	qStreamVersion = `SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = +?`
	qInsertEvent   = `INSERT INTO events (stream_id, version, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?)`
	qLoadStream    = `SELECT version, type, data, metadata, recorded_at FROM events WHERE stream_id = ? ORDER BY version`
	qLoadEvents    = `SELECT version, type, data FROM events WHERE stream_id = ? ORDER BY version`
	qLatestMeta    = `SELECT metadata FROM events WHERE stream_id = ? ORDER BY version DESC LIMIT 1`
	qViewStatus    = `SELECT status FROM order_view WHERE order_id = ?`
	qOrderView     = `SELECT ` + viewColumns + ` FROM order_view WHERE order_id = ?`
	// qUpdateView is qUpsertView's ON CONFLICT branch, for a row known to
	// exist: it leaves the columns fixed at placement alone, so they need
	// not be encoded again.
	qUpdateView = `UPDATE order_view SET
			status = ?, reason = ?, saga_step = ?, awaiting = ?, deadline = ?,
			payment_id = ?, shipment_id = ?, carrier = ?, tracking_number = ?,
			updated_at = ?, finished_at = COALESCE(finished_at, ?), version = ?
		WHERE order_id = ?`
	qUpsertView = `INSERT INTO order_view (
			order_id, customer_id, status, reason, items, currency, total_cents, shipping_address,
			saga_step, awaiting, deadline, payment_id, shipment_id, carrier, tracking_number,
			placed_at, updated_at, finished_at, trace_id, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (order_id) DO UPDATE SET
			status = excluded.status, reason = excluded.reason, saga_step = excluded.saga_step,
			awaiting = excluded.awaiting, deadline = excluded.deadline,
			payment_id = excluded.payment_id, shipment_id = excluded.shipment_id,
			carrier = excluded.carrier, tracking_number = excluded.tracking_number,
			updated_at = excluded.updated_at,
			finished_at = COALESCE(order_view.finished_at, excluded.finished_at),
			version = excluded.version`
	qCountDown      = `UPDATE order_status_counts SET count = count - 1 WHERE status = ?`
	qCountDelete    = `DELETE FROM order_status_counts WHERE status = ? AND count <= 0`
	qCountUp        = `INSERT INTO order_status_counts (status, count) VALUES (?, 1) ON CONFLICT (status) DO UPDATE SET count = count + 1`
	qClearDeadline  = `DELETE FROM order_deadlines WHERE order_id = ?`
	qSetDeadline    = `INSERT INTO order_deadlines (order_id, due_at, trace_id, span_id, trace_flags) VALUES (?, ?, ?, ?, ?) ON CONFLICT (order_id) DO UPDATE SET due_at = excluded.due_at, trace_id = excluded.trace_id, span_id = excluded.span_id, trace_flags = excluded.trace_flags`
	qIdempotencyGet = `SELECT request_hash, order_id, created_at FROM idempotency_keys WHERE key = ?`
	qIdempotencyPut = `INSERT INTO idempotency_keys (key, request_hash, order_id, created_at) VALUES (?, ?, ?, ?)`
	// qDueDeadlines reads order_deadlines_due_order in order: no sort.
	qDueDeadlines = `SELECT order_id, due_at, trace_id, span_id, trace_flags FROM order_deadlines
		WHERE due_at <= ? AND (due_at, order_id) > (?, ?)
		ORDER BY due_at, order_id LIMIT ?`
	qOpenOrders = `SELECT COALESCE(SUM(count), 0) FROM order_status_counts WHERE status NOT IN (?, ?, ?)`
)

var writerStmts = []string{
	qStreamVersion, qInsertEvent, qLoadStream, qLoadEvents, qViewStatus, qUpsertView, qUpdateView,
	qCountDown, qCountDelete, qCountUp, qClearDeadline, qSetDeadline,
	qIdempotencyGet, qIdempotencyPut, qOpenOrders,
}

// txQuerier is what the writes of a decision need: a *sql.Tx, or a cachedTx
// that runs the prepared statements in it.
type txQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// stmtCache holds statements prepared on the writer pool. It must be built
// before any transaction holds the writer's connection (with one connection
// preparing would wait for it). A nil cache prepares nothing.
type stmtCache struct {
	m map[string]*sql.Stmt
}

func prepareStmts(ctx context.Context, db *sql.DB, queries []string) (*stmtCache, error) {
	c := &stmtCache{m: make(map[string]*sql.Stmt, len(queries))}
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("prepare statement: %w", err), c.close())
		}
		c.m[q] = st
	}
	return c, nil
}

func (c *stmtCache) close() error {
	if c == nil {
		return nil
	}
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// in returns tx's view running the cached statements.
func (c *stmtCache) in(tx *sql.Tx) cachedTx { return cachedTx{tx: tx, c: c} }

// cachedTx runs a query through the transaction's copy of its prepared
// statement when the cache holds it (database/sql reuses the statement
// already prepared on the transaction's connection) and as a plain
// statement of the transaction otherwise.
type cachedTx struct {
	tx *sql.Tx
	c  *stmtCache
}

func (t cachedTx) stmt(ctx context.Context, q string) *sql.Stmt {
	if t.c == nil {
		return nil
	}
	st, ok := t.c.m[q]
	if !ok {
		return nil
	}
	return t.tx.StmtContext(ctx, st)
}

func (t cachedTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

func (t cachedTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (t cachedTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}
