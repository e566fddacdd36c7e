package adapters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/services/payment/internal/app"
	"github.com/orderflow/orderflow/services/payment/internal/domain"
)

// Store reads and writes payment's tables through a transaction or the
// database (read-only queries).
type Store struct {
	q servicedb.Querier
}

// NewReadModel returns the read model (app.ReadModel) over db.
func NewReadModel(db *sql.DB) Store { return Store{q: db} }

const paymentColumns = `order_id, COALESCE(payment_id, ''), customer_id, amount_cents, currency, status, reason`

func scanPayment(row interface{ Scan(...any) error }) (domain.Payment, error) {
	var p domain.Payment
	var status string
	err := row.Scan(&p.OrderID, &p.ID, &p.CustomerID, &p.AmountCents, &p.Currency, &status, &p.Reason)
	p.Status = domain.Status(status)
	return p, err
}

// Payment returns the order's payment, or nil.
func (s Store) Payment(ctx context.Context, orderID string) (*domain.Payment, error) {
	p, err := scanPayment(s.q.QueryRowContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE order_id = ?`, orderID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load payment of order %s: %w", orderID, err)
	}
	return &p, nil
}

// SavePayment inserts or updates the order's payment.
func (s Store) SavePayment(ctx context.Context, p domain.Payment) error {
	var id any
	if p.ID != "" {
		id = p.ID
	}
	now := time.Now().UnixMilli()
	_, err := s.q.ExecContext(ctx, `
		INSERT INTO payments (order_id, payment_id, customer_id, amount_cents, currency, status, reason, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (order_id) DO UPDATE SET payment_id = excluded.payment_id, customer_id = excluded.customer_id,
			amount_cents = excluded.amount_cents, currency = excluded.currency, status = excluded.status,
			reason = excluded.reason, updated_at = excluded.updated_at`,
		p.OrderID, id, p.CustomerID, p.AmountCents, p.Currency, string(p.Status), p.Reason, now, now)
	if err != nil {
		return fmt.Errorf("save payment of order %s: %w", p.OrderID, err)
	}
	return nil
}

// AppendLedger records a money movement.
func (s Store) AppendLedger(ctx context.Context, e domain.Entry) error {
	_, err := s.q.ExecContext(ctx, `
		INSERT INTO ledger (payment_id, order_id, kind, amount_cents, currency, recorded_at) VALUES (?, ?, ?, ?, ?, ?)`,
		e.PaymentID, e.OrderID, string(e.Kind), e.AmountCents, e.Currency, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("append %s of payment %s to the ledger: %w", e.Kind, e.PaymentID, err)
	}
	return nil
}

func limit(f app.Filter) int {
	if f.Limit <= 0 {
		return 1000
	}
	return f.Limit
}

// Payments lists payments, newest first.
func (s Store) Payments(ctx context.Context, f app.Filter) ([]domain.Payment, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+paymentColumns+` FROM payments
		WHERE (? = '' OR order_id = ?) ORDER BY created_at DESC, order_id LIMIT ?`, f.OrderID, f.OrderID, limit(f))
	if err != nil {
		return nil, fmt.Errorf("list payments: %w", err)
	}
	defer rows.Close()
	out := []domain.Payment{}
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, fmt.Errorf("list payments: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Ledger lists ledger entries, oldest first.
func (s Store) Ledger(ctx context.Context, f app.Filter) ([]app.LedgerEntry, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT id, payment_id, order_id, kind, amount_cents, currency, recorded_at FROM ledger
		WHERE (? = '' OR order_id = ?) ORDER BY id LIMIT ?`, f.OrderID, f.OrderID, limit(f))
	if err != nil {
		return nil, fmt.Errorf("list ledger: %w", err)
	}
	defer rows.Close()
	out := []app.LedgerEntry{}
	for rows.Next() {
		var e app.LedgerEntry
		var kind string
		var at int64
		if err := rows.Scan(&e.ID, &e.PaymentID, &e.OrderID, &kind, &e.AmountCents, &e.Currency, &at); err != nil {
			return nil, fmt.Errorf("list ledger: %w", err)
		}
		e.Kind, e.RecordedAt = domain.EntryKind(kind), time.UnixMilli(at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// Totals sums payments and ledger.
func (s Store) Totals(ctx context.Context) (app.Totals, error) {
	t := app.Totals{Payments: map[domain.Status]int{}}
	rows, err := s.q.QueryContext(ctx, `SELECT status, COUNT(*), COALESCE(SUM(amount_cents), 0) FROM payments GROUP BY status`)
	if err != nil {
		return t, fmt.Errorf("payment totals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		var n int
		var sum int64
		if err := rows.Scan(&status, &n, &sum); err != nil {
			return t, fmt.Errorf("payment totals: %w", err)
		}
		t.Payments[domain.Status(status)] = n
		if domain.Status(status) == domain.StatusCharged {
			t.OutstandingCents = sum
		}
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("payment totals: %w", err)
	}
	err = s.q.QueryRowContext(ctx, `SELECT
			COALESCE(SUM(CASE WHEN kind = 'charge' THEN amount_cents END), 0),
			COALESCE(-SUM(CASE WHEN kind = 'refund' THEN amount_cents END), 0)
		FROM ledger`).Scan(&t.ChargedCents, &t.RefundedCents)
	if err != nil {
		return t, fmt.Errorf("ledger totals: %w", err)
	}
	t.NetCents = t.ChargedCents - t.RefundedCents
	err = s.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM (
			SELECT order_id FROM ledger WHERE kind = 'charge' GROUP BY order_id HAVING COUNT(*) > 1)`).
		Scan(&t.OrdersChargedTwice)
	if err != nil {
		return t, fmt.Errorf("ledger totals: %w", err)
	}
	return t, nil
}
