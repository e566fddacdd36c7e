package adapters

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// project updates the order_view row and the status counts of o, whose
// state already includes recs, the records just appended (or, when
// rebuilding, the whole stream). Only what the stream holds goes into the
// row, so a rebuild reproduces the live projection exactly.
func project(ctx context.Context, tx txQuerier, o *domain.Order, recs []app.EventRecord) error {
	if len(recs) == 0 {
		return nil
	}
	var prev string
	err := tx.QueryRowContext(ctx, qViewStatus, o.ID()).Scan(&prev)
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("project %s: %w", o.ID(), err)
	}
	var traceID string
	var finishedAt *time.Time
	for _, r := range recs {
		if r.Version == 1 {
			traceID = r.Metadata.TraceID
		}
		switch r.Type {
		case domain.OrderCompleted{}.EventType(), domain.OrderCancelled{}.EventType(), domain.OrderRejected{}.EventType():
			finishedAt = &r.RecordedAt
		}
	}
	last := recs[len(recs)-1]
	v := app.ViewOf(o, app.ViewMeta{Version: last.Version, TraceID: traceID, UpdatedAt: last.RecordedAt, FinishedAt: finishedAt})
	awaitingJSON, err := json.Marshal(v.Awaiting)
	if err != nil {
		return fmt.Errorf("project %s: %w", o.ID(), err)
	}
	deadline := nullMilli(v.Deadline)
	finished := nullMilli(v.FinishedAt)
	if exists {
		// The upsert's ON CONFLICT branch, without encoding the columns
		// it leaves alone.
		if _, err := tx.ExecContext(ctx, qUpdateView,
			string(v.Status), v.Reason, v.SagaStep, string(awaitingJSON), deadline,
			v.PaymentID, v.ShipmentID, v.Carrier, v.TrackingNumber,
			v.UpdatedAt.UnixMilli(), finished, v.Version, v.ID,
		); err != nil {
			return fmt.Errorf("project %s: %w", o.ID(), err)
		}
		return updateStatusCounts(ctx, tx, o, prev, v.Status)
	}
	items, err := json.Marshal(v.Items)
	if err != nil {
		return fmt.Errorf("project %s: %w", o.ID(), err)
	}
	addr, err := json.Marshal(v.ShippingAddress)
	if err != nil {
		return fmt.Errorf("project %s: %w", o.ID(), err)
	}
	if _, err := tx.ExecContext(ctx, qUpsertView,
		v.ID, v.CustomerID, string(v.Status), v.Reason, string(items), v.Currency, v.TotalCents, string(addr),
		v.SagaStep, string(awaitingJSON), deadline, v.PaymentID, v.ShipmentID, v.Carrier, v.TrackingNumber,
		v.PlacedAt.UnixMilli(), v.UpdatedAt.UnixMilli(), finished, v.TraceID, v.Version,
	); err != nil {
		return fmt.Errorf("project %s: %w", o.ID(), err)
	}
	return updateStatusCounts(ctx, tx, o, prev, v.Status)
}

// nullMilli is t in a column of Unix milliseconds, NULL for nil.
func nullMilli(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// updateStatusCounts moves o from status prev ("" for a new order) to
// status in the counts projection.
func updateStatusCounts(ctx context.Context, tx txQuerier, o *domain.Order, prev string, status domain.Status) error {
	if prev == string(status) {
		return nil
	}
	if prev != "" {
		if _, err := tx.ExecContext(ctx, qCountDown, prev); err != nil {
			return fmt.Errorf("project %s: count %s: %w", o.ID(), prev, err)
		}
		if _, err := tx.ExecContext(ctx, qCountDelete, prev); err != nil {
			return fmt.Errorf("project %s: count %s: %w", o.ID(), prev, err)
		}
	}
	if _, err := tx.ExecContext(ctx, qCountUp, string(status)); err != nil {
		return fmt.Errorf("project %s: count %s: %w", o.ID(), status, err)
	}
	return nil
}

// setDeadline records o's next deadline in the index, or removes it when
// nothing is awaited. meta is the latest decision's, whose span becomes
// the parent of the timeout's span.
func setDeadline(ctx context.Context, tx txQuerier, o *domain.Order, meta app.EventMetadata) error {
	d := o.Deadline()
	if d.IsZero() {
		if _, err := tx.ExecContext(ctx, qClearDeadline, o.ID()); err != nil {
			return fmt.Errorf("clear deadline of %s: %w", o.ID(), err)
		}
		return nil
	}
	if _, err := tx.ExecContext(ctx, qSetDeadline,
		o.ID(), ceilMilli(d), meta.TraceID, meta.SpanID, meta.TraceFlags); err != nil {
		return fmt.Errorf("set deadline of %s: %w", o.ID(), err)
	}
	return nil
}

// ceilMilli rounds t up to a millisecond (the unit of the stored times),
// so an index entry is never due before the aggregate's deadline and a
// placed_at >= bound keeps no order placed before it.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

const viewColumns = `order_id, customer_id, status, reason, items, currency, total_cents, shipping_address,
	saga_step, awaiting, deadline, payment_id, shipment_id, carrier, tracking_number,
	placed_at, updated_at, finished_at, trace_id, version`

func scanView(row interface{ Scan(...any) error }) (app.OrderView, error) {
	var (
		v                     app.OrderView
		status                string
		items, addr, awaiting string
		deadline, finished    sql.NullInt64
		placedAt, updatedAt   int64
	)
	if err := row.Scan(&v.ID, &v.CustomerID, &status, &v.Reason, &items, &v.Currency, &v.TotalCents, &addr,
		&v.SagaStep, &awaiting, &deadline, &v.PaymentID, &v.ShipmentID, &v.Carrier, &v.TrackingNumber,
		&placedAt, &updatedAt, &finished, &v.TraceID, &v.Version); err != nil {
		return app.OrderView{}, err
	}
	v.Status = domain.Status(status)
	if err := json.Unmarshal([]byte(items), &v.Items); err != nil {
		return app.OrderView{}, fmt.Errorf("items of %s: %w", v.ID, err)
	}
	if err := json.Unmarshal([]byte(addr), &v.ShippingAddress); err != nil {
		return app.OrderView{}, fmt.Errorf("address of %s: %w", v.ID, err)
	}
	if err := json.Unmarshal([]byte(awaiting), &v.Awaiting); err != nil {
		return app.OrderView{}, fmt.Errorf("awaiting of %s: %w", v.ID, err)
	}
	v.PlacedAt, v.UpdatedAt = time.UnixMilli(placedAt).UTC(), time.UnixMilli(updatedAt).UTC()
	if deadline.Valid {
		t := time.UnixMilli(deadline.Int64).UTC()
		v.Deadline = &t
	}
	if finished.Valid {
		t := time.UnixMilli(finished.Int64).UTC()
		v.FinishedAt = &t
	}
	return v, nil
}

// cursor is a position in the order list: newest first by placed_at, then
// by id.
type cursor struct {
	placedAt int64
	orderID  string
}

func (c cursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.placedAt, 10) + "|" + c.orderID))
}

func decodeCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, fmt.Errorf("%w: not base64url", app.ErrInvalidCursor)
	}
	at, id, ok := strings.Cut(string(b), "|")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id == "" {
		return cursor{}, fmt.Errorf("%w: malformed", app.ErrInvalidCursor)
	}
	return cursor{placedAt: n, orderID: id}, nil
}

// RebuildProjections recomputes the order list, the status counts and the
// deadline index from the event store, in one transaction, and returns the
// number of orders. Live projections are written in the transaction of
// each append, so a rebuild is only needed after a change of the
// projection code or a repair.
func (s *Store) RebuildProjections(ctx context.Context) (int, error) {
	return RebuildProjections(ctx, s.db)
}

// RebuildProjections is Store.RebuildProjections on a database alone, for
// the rebuild-projections command (no outbox or inbox needed).
func RebuildProjections(ctx context.Context, db *DB) (int, error) {
	n := 0
	var events EventStore
	s := &Store{db: db}
	err := servicedb.InTx(ctx, s.db.Writer, func(ctx context.Context, sqlTx *sql.Tx) error {
		tx := db.stmts.in(sqlTx)
		for _, q := range []string{`DELETE FROM order_view`, `DELETE FROM order_status_counts`, `DELETE FROM order_deadlines`} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("clear projections: %w", err)
			}
		}
		ids, err := events.StreamIDs(ctx, tx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			recs, stream, err := events.Load(ctx, tx, id)
			if err != nil {
				return err
			}
			o, err := domain.Rehydrate(stream)
			if err != nil {
				return fmt.Errorf("rehydrate %s: %w", id, err)
			}
			if err := project(ctx, tx, o, recs); err != nil {
				return err
			}
			if err := setDeadline(ctx, tx, o, recs[len(recs)-1].Metadata); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rebuild projections: %w", err)
	}
	return n, nil
}
