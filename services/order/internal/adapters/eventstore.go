package adapters

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// ConflictError reports an append whose expected version was not the
// stream's: another writer appended first. It matches app.ErrConflict.
type ConflictError struct {
	StreamID string
	// Expected is the version the writer loaded; Actual the stream's
	// version when the append ran (-1 when only the unique constraint
	// caught the race).
	Expected, Actual int
}

func (e *ConflictError) Error() string {
	if e.Actual < 0 {
		return fmt.Sprintf("stream %s: version %d was appended concurrently", e.StreamID, e.Expected+1)
	}
	return fmt.Sprintf("stream %s is at version %d, expected %d", e.StreamID, e.Actual, e.Expected)
}

// Is reports whether target is app.ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == app.ErrConflict }

// querier is what the event store reads through: a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// EventStore appends to and reads order streams in table events. It holds
// no state: callers pass the transaction or pool to use.
type EventStore struct{}

// Append stores events at versions expected+1, expected+2, … of streamID,
// within tx, and returns their records. If the stream is not at version
// expected, or another transaction appends the same version first, it
// returns a *ConflictError and stores nothing (the caller rolls tx back).
func (es EventStore) Append(ctx context.Context, tx txQuerier, streamID string, expected int, events []domain.Event, meta app.EventMetadata, at time.Time) ([]app.EventRecord, error) {
	if streamID == "" {
		return nil, errors.New("append: stream id is empty")
	}
	if len(events) == 0 {
		return nil, nil
	}
	var actual int
	if err := tx.QueryRowContext(ctx, qStreamVersion, streamID).Scan(&actual); err != nil {
		return nil, fmt.Errorf("append to %s: read version: %w", streamID, err)
	}
	if actual != expected {
		return nil, &ConflictError{StreamID: streamID, Expected: expected, Actual: actual}
	}
	return es.appendAt(ctx, tx, streamID, expected, events, meta, at)
}

// appendAt is Append for a caller that read the stream at expected in tx
// (whose write lock nobody else can take meanwhile): it skips reading the
// version. A stream ahead of expected would still fail on the unique
// constraint, but one behind it would get a gap, which is why only such
// callers may use it.
func (EventStore) appendAt(ctx context.Context, tx txQuerier, streamID string, expected int, events []domain.Event, meta app.EventMetadata, at time.Time) ([]app.EventRecord, error) {
	if streamID == "" {
		return nil, errors.New("append: stream id is empty")
	}
	if len(events) == 0 {
		return nil, nil
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("append to %s: encode metadata: %w", streamID, err)
	}
	recordedAt := at.UnixMilli()
	recs := make([]app.EventRecord, 0, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("append to %s: encode %s: %w", streamID, e.EventType(), err)
		}
		version := expected + i + 1
		if _, err := tx.ExecContext(ctx, qInsertEvent,
			streamID, version, e.EventType(), string(data), string(metaJSON), recordedAt); err != nil {
			if isUniqueViolation(err) {
				return nil, &ConflictError{StreamID: streamID, Expected: expected, Actual: -1}
			}
			return nil, fmt.Errorf("append to %s: insert version %d: %w", streamID, version, err)
		}
		recs = append(recs, app.EventRecord{
			StreamID: streamID, Version: version, Type: e.EventType(), Data: data,
			Metadata: meta, RecordedAt: time.UnixMilli(recordedAt).UTC(),
		})
	}
	return recs, nil
}

// Load returns the records of streamID, oldest first, and their decoded
// events. An empty stream returns no records and no error.
func (EventStore) Load(ctx context.Context, q querier, streamID string) ([]app.EventRecord, []domain.Event, error) {
	rows, err := q.QueryContext(ctx, qLoadStream, streamID)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", streamID, err)
	}
	defer rows.Close()
	var (
		recs   []app.EventRecord
		events []domain.Event
	)
	for rows.Next() {
		var (
			r          app.EventRecord
			data, meta string
			recordedAt int64
		)
		if err := rows.Scan(&r.Version, &r.Type, &data, &meta, &recordedAt); err != nil {
			return nil, nil, fmt.Errorf("load %s: %w", streamID, err)
		}
		r.StreamID, r.Data, r.RecordedAt = streamID, json.RawMessage(data), time.UnixMilli(recordedAt).UTC()
		if err := json.Unmarshal([]byte(meta), &r.Metadata); err != nil {
			return nil, nil, fmt.Errorf("load %s: metadata of version %d: %w", streamID, r.Version, err)
		}
		e, err := decodeEvent(r.Type, r.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("load %s: version %d: %w", streamID, r.Version, err)
		}
		recs = append(recs, r)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", streamID, err)
	}
	return recs, events, nil
}

// loadEvents returns the decoded events of streamID, oldest first, without
// their records (what rehydrating an aggregate needs). An empty stream
// returns no events and no error.
func (EventStore) loadEvents(ctx context.Context, q querier, streamID string) ([]domain.Event, error) {
	rows, err := q.QueryContext(ctx, qLoadEvents, streamID)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", streamID, err)
	}
	defer rows.Close()
	var events []domain.Event
	for rows.Next() {
		var (
			version int
			typ     string
			data    []byte
		)
		if err := rows.Scan(&version, &typ, &data); err != nil {
			return nil, fmt.Errorf("load %s: %w", streamID, err)
		}
		e, err := decodeEvent(typ, data)
		if err != nil {
			return nil, fmt.Errorf("load %s: version %d: %w", streamID, version, err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load %s: %w", streamID, err)
	}
	return events, nil
}

// StreamIDs returns every stream id, in the order the streams began.
func (EventStore) StreamIDs(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT stream_id FROM events WHERE version = 1 ORDER BY position`)
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list streams: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	return ids, nil
}

func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) &&
		(se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
}

// decodeEvent parses the data of a stored event of type typ.
func decodeEvent(typ string, data []byte) (domain.Event, error) {
	switch typ {
	case domain.OrderPlaced{}.EventType():
		return decodeAs[domain.OrderPlaced](data)
	case domain.StockReserved{}.EventType():
		return decodeAs[domain.StockReserved](data)
	case domain.StockReservationFailed{}.EventType():
		return decodeAs[domain.StockReservationFailed](data)
	case domain.PaymentRequested{}.EventType():
		return decodeAs[domain.PaymentRequested](data)
	case domain.PaymentCharged{}.EventType():
		return decodeAs[domain.PaymentCharged](data)
	case domain.PaymentDeclined{}.EventType():
		return decodeAs[domain.PaymentDeclined](data)
	case domain.ShipmentRequested{}.EventType():
		return decodeAs[domain.ShipmentRequested](data)
	case domain.ShipmentScheduled{}.EventType():
		return decodeAs[domain.ShipmentScheduled](data)
	case domain.ShipmentFailed{}.EventType():
		return decodeAs[domain.ShipmentFailed](data)
	case domain.CancellationRequested{}.EventType():
		return decodeAs[domain.CancellationRequested](data)
	case domain.StepTimedOut{}.EventType():
		return decodeAs[domain.StepTimedOut](data)
	case domain.CompensationRequested{}.EventType():
		return decodeAs[domain.CompensationRequested](data)
	case domain.StockReleased{}.EventType():
		return decodeAs[domain.StockReleased](data)
	case domain.PaymentRefunded{}.EventType():
		return decodeAs[domain.PaymentRefunded](data)
	case domain.ShipmentCancelled{}.EventType():
		return decodeAs[domain.ShipmentCancelled](data)
	case domain.ExtraChargeDetected{}.EventType():
		return decodeAs[domain.ExtraChargeDetected](data)
	case domain.OrderCompleted{}.EventType():
		return decodeAs[domain.OrderCompleted](data)
	case domain.OrderCancelled{}.EventType():
		return decodeAs[domain.OrderCancelled](data)
	case domain.OrderRejected{}.EventType():
		return decodeAs[domain.OrderRejected](data)
	}
	return nil, fmt.Errorf("%w: unknown event type %q", domain.ErrInvalidHistory, typ)
}

func decodeAs[E domain.Event](data []byte) (domain.Event, error) {
	var e E
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("decode %s: %w", e.EventType(), err)
	}
	return e, nil
}
