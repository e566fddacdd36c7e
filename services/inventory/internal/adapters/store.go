package adapters

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
	"github.com/orderflow/orderflow/services/inventory/internal/domain"
)

// Store reads and writes inventory's tables through a transaction or the
// database (read-only queries).
type Store struct {
	q servicedb.Querier
}

// NewReadModel returns the read model (app.ReadModel) over db.
func NewReadModel(db *sql.DB) Store { return Store{q: db} }

// Reservation returns the order's reservation, or nil.
func (s Store) Reservation(ctx context.Context, orderID string) (*domain.Reservation, error) {
	var r domain.Reservation
	var status, lines, unavailable string
	err := s.q.QueryRowContext(ctx,
		`SELECT order_id, status, lines, reason, unavailable FROM reservations WHERE order_id = ?`, orderID).
		Scan(&r.OrderID, &status, &lines, &r.Reason, &unavailable)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load reservation %s: %w", orderID, err)
	}
	r.Status = domain.Status(status)
	if err := json.Unmarshal([]byte(lines), &r.Lines); err != nil {
		return nil, fmt.Errorf("load reservation %s: lines: %w", orderID, err)
	}
	if err := json.Unmarshal([]byte(unavailable), &r.Unavailable); err != nil {
		return nil, fmt.Errorf("load reservation %s: unavailable: %w", orderID, err)
	}
	if len(r.Unavailable) == 0 {
		r.Unavailable = nil
	}
	return &r, nil
}

// SaveReservation inserts or replaces the order's reservation.
func (s Store) SaveReservation(ctx context.Context, r domain.Reservation) error {
	lines, err := json.Marshal(nonNil(r.Lines))
	if err != nil {
		return err
	}
	unavailable, err := json.Marshal(nonNil(r.Unavailable))
	if err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	_, err = s.q.ExecContext(ctx, `
		INSERT INTO reservations (order_id, status, lines, reason, unavailable, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, lines = excluded.lines,
			reason = excluded.reason, unavailable = excluded.unavailable, updated_at = excluded.updated_at`,
		r.OrderID, string(r.Status), string(lines), r.Reason, string(unavailable), now, now)
	if err != nil {
		return fmt.Errorf("save reservation %s: %w", r.OrderID, err)
	}
	return nil
}

func nonNil(l []domain.Line) []domain.Line {
	if l == nil {
		return []domain.Line{}
	}
	return l
}

// Stock returns the stock of skus; unknown SKUs are absent.
func (s Store) Stock(ctx context.Context, skus []string) (map[string]domain.Stock, error) {
	out := make(map[string]domain.Stock, len(skus))
	if len(skus) == 0 {
		return out, nil
	}
	args := make([]any, len(skus))
	for i, sku := range skus {
		args[i] = sku
	}
	rows, err := s.q.QueryContext(ctx,
		`SELECT sku, available, reserved, initial, restocked FROM stock WHERE sku IN (?`+
			strings.Repeat(",?", len(skus)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("load stock: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st domain.Stock
		if err := rows.Scan(&st.SKU, &st.Available, &st.Reserved, &st.Initial, &st.Restocked); err != nil {
			return nil, fmt.Errorf("load stock: %w", err)
		}
		out[st.SKU] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load stock: %w", err)
	}
	return out, nil
}

// SaveStock updates the stock of existing SKUs.
func (s Store) SaveStock(ctx context.Context, stock []domain.Stock) error {
	now := time.Now().UnixMilli()
	for _, st := range stock {
		res, err := s.q.ExecContext(ctx,
			`UPDATE stock SET available = ?, reserved = ?, restocked = ?, updated_at = ? WHERE sku = ?`,
			st.Available, st.Reserved, st.Restocked, now, st.SKU)
		if err != nil {
			return fmt.Errorf("save stock %s: %w", st.SKU, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("save stock %s: %d rows updated (%v), want 1", st.SKU, n, err)
		}
	}
	return nil
}

// ListStock returns every SKU's stock, sorted by SKU.
func (s Store) ListStock(ctx context.Context) ([]domain.Stock, error) {
	rows, err := s.q.QueryContext(ctx,
		`SELECT sku, available, reserved, initial, restocked FROM stock ORDER BY sku`)
	if err != nil {
		return nil, fmt.Errorf("list stock: %w", err)
	}
	defer rows.Close()
	out := []domain.Stock{}
	for rows.Next() {
		var st domain.Stock
		if err := rows.Scan(&st.SKU, &st.Available, &st.Reserved, &st.Initial, &st.Restocked); err != nil {
			return nil, fmt.Errorf("list stock: %w", err)
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// ReservationCounts counts reservations by status.
func (s Store) ReservationCounts(ctx context.Context) (map[domain.Status]int, error) {
	return servicedb.CountByKey[domain.Status](ctx, s.q, "count reservations", `SELECT status, COUNT(*) FROM reservations GROUP BY status`)
}

// RestockKey returns the record of Idempotency-Key key, found false when
// none is kept.
func (s Store) RestockKey(ctx context.Context, key string) (app.RestockKey, bool, error) {
	rk := app.RestockKey{Key: key}
	var created int64
	err := s.q.QueryRowContext(ctx, `SELECT sku, quantity, created_at FROM restock_keys WHERE key = ?`, key).
		Scan(&rk.SKU, &rk.Quantity, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return app.RestockKey{}, false, nil
	}
	if err != nil {
		return app.RestockKey{}, false, fmt.Errorf("load restock key: %w", err)
	}
	rk.CreatedAt = time.UnixMilli(created).UTC()
	return rk, true, nil
}

// SaveRestockKey records an Idempotency-Key with its restock; a key kept
// already is an error (the primary key's).
func (s Store) SaveRestockKey(ctx context.Context, rk app.RestockKey) error {
	_, err := s.q.ExecContext(ctx, `INSERT INTO restock_keys (key, sku, quantity, created_at) VALUES (?, ?, ?, ?)`,
		rk.Key, rk.SKU, rk.Quantity, rk.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("save restock key: %w", err)
	}
	return nil
}

// PurgeRestockKeys deletes the keys recorded before t.
func (s Store) PurgeRestockKeys(ctx context.Context, t time.Time) error {
	if _, err := s.q.ExecContext(ctx, `DELETE FROM restock_keys WHERE created_at < ?`, t.UnixMilli()); err != nil {
		return fmt.Errorf("purge restock keys: %w", err)
	}
	return nil
}
