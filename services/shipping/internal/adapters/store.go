package adapters

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/services/shipping/internal/app"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
)

// Store reads and writes shipping's tables through a transaction or the
// database (read-only queries).
type Store struct {
	q servicedb.Querier
}

// NewReadModel returns the read model (app.ReadModel) over db.
func NewReadModel(db *sql.DB) Store { return Store{q: db} }

const shipmentColumns = `order_id, COALESCE(shipment_id, ''), status, carrier, tracking_number, lines, address, reason`

func scanShipment(row interface{ Scan(...any) error }) (domain.Shipment, error) {
	var s domain.Shipment
	var status, lines, address string
	if err := row.Scan(&s.OrderID, &s.ID, &status, &s.Carrier, &s.TrackingNumber, &lines, &address, &s.Reason); err != nil {
		return s, err
	}
	s.Status = domain.Status(status)
	var lr []lineRow
	if err := json.Unmarshal([]byte(lines), &lr); err != nil {
		return s, fmt.Errorf("lines: %w", err)
	}
	if lr != nil {
		s.Lines = make([]domain.Line, len(lr))
		for i, l := range lr {
			s.Lines[i] = domain.Line(l)
		}
	}
	var ar addressRow
	if err := json.Unmarshal([]byte(address), &ar); err != nil {
		return s, fmt.Errorf("address: %w", err)
	}
	s.Address = domain.Address(ar)
	return s, nil
}

// lineRow is a domain.Line in the JSON of the lines column.
type lineRow struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// addressRow is a domain.Address as the address column holds it.
type addressRow struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country"`
}

// Shipment returns the order's shipment, or nil.
func (s Store) Shipment(ctx context.Context, orderID string) (*domain.Shipment, error) {
	sh, err := scanShipment(s.q.QueryRowContext(ctx, `SELECT `+shipmentColumns+` FROM shipments WHERE order_id = ?`, orderID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load shipment of order %s: %w", orderID, err)
	}
	return &sh, nil
}

// SaveShipment inserts or updates the order's shipment.
func (s Store) SaveShipment(ctx context.Context, sh domain.Shipment) error {
	lines := make([]lineRow, len(sh.Lines))
	for i, l := range sh.Lines {
		lines[i] = lineRow(l)
	}
	l, err := json.Marshal(lines)
	if err != nil {
		return err
	}
	a, err := json.Marshal(addressRow(sh.Address))
	if err != nil {
		return err
	}
	var id any
	if sh.ID != "" {
		id = sh.ID
	}
	now := time.Now().UnixMilli()
	_, err = s.q.ExecContext(ctx, `
		INSERT INTO shipments (order_id, shipment_id, status, carrier, tracking_number, lines, address, reason, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (order_id) DO UPDATE SET shipment_id = excluded.shipment_id, status = excluded.status,
			carrier = excluded.carrier, tracking_number = excluded.tracking_number, lines = excluded.lines,
			address = excluded.address, reason = excluded.reason, updated_at = excluded.updated_at`,
		sh.OrderID, id, string(sh.Status), sh.Carrier, sh.TrackingNumber, string(l), string(a), sh.Reason, now, now)
	if err != nil {
		return fmt.Errorf("save shipment of order %s: %w", sh.OrderID, err)
	}
	return nil
}

// Shipments lists shipments, newest first.
func (s Store) Shipments(ctx context.Context, f app.Filter) ([]domain.Shipment, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.q.QueryContext(ctx, `SELECT `+shipmentColumns+` FROM shipments
		WHERE (? = '' OR order_id = ?) ORDER BY created_at DESC, order_id LIMIT ?`, f.OrderID, f.OrderID, limit)
	if err != nil {
		return nil, fmt.Errorf("list shipments: %w", err)
	}
	defer rows.Close()
	out := []domain.Shipment{}
	for rows.Next() {
		sh, err := scanShipment(rows)
		if err != nil {
			return nil, fmt.Errorf("list shipments: %w", err)
		}
		out = append(out, sh)
	}
	return out, rows.Err()
}

// Counts counts shipments by status.
func (s Store) Counts(ctx context.Context) (map[domain.Status]int, error) {
	return servicedb.CountByKey[domain.Status](ctx, s.q, "count shipments", `SELECT status, COUNT(*) FROM shipments GROUP BY status`)
}
