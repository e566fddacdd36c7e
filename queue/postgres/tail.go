package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/queue/backend"
)

// TailPosition is a place in a topic, in the order in which watermill-sql
// makes messages readable and delivers them: by the id of the transaction
// that inserted them (column transaction_id, xid8), then by offset. The
// zero value is before the first message.
//
// A position by offset alone would not do: offsets come from a sequence
// when a row is inserted, transaction ids when a transaction first writes,
// so a transaction that took its id first (it wrote something else before
// publishing, or lost a race between the two) may hold the lower id and the
// higher offset. Its message becomes readable while the other transaction,
// with the lower offset, is still open; a reader that went on from the
// higher offset would never see the lower one.
type TailPosition struct {
	TransactionID uint64 `json:"transaction_id"`
	Offset        int64  `json:"offset"`
}

// TailEnd returns the position after every message of any topic that is
// readable now, to tail only what becomes readable later. It reads no
// table: the messages that become readable later are exactly those whose
// transaction id is not below the current pg_snapshot_xmin.
func (b *Backend) TailEnd(ctx context.Context) (TailPosition, error) {
	var xmin string
	if err := b.db.QueryRowContext(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&xmin); err != nil {
		return TailPosition{}, fmt.Errorf("tail: read the snapshot horizon: %w", err)
	}
	id, err := strconv.ParseUint(xmin, 10, 64)
	if err != nil {
		return TailPosition{}, fmt.Errorf("tail: snapshot horizon %q: %w", xmin, err)
	}
	return TailPosition{TransactionID: id}, nil
}

// ReadTail returns up to limit messages of topic after position after, in
// watermill-sql's delivery order, and the position of the last one (after
// itself when there is none): pass it to the next call to follow the topic.
//
// It reads the topic's message table (watermill-sql's default PostgreSQL
// schema) with watermill-sql's own visibility rule (its SelectQuery): only
// rows whose transaction_id is below pg_snapshot_xmin(pg_current_snapshot()),
// the oldest transaction still running on the server. Every row that
// becomes readable later has a transaction id at or above that horizon,
// so above the position of every row returned so far: following from the
// last position never skips a message whose transaction commits late. The
// price is watermill-sql's: while a write transaction is open anywhere on
// the server, messages published after it began show up neither here nor
// for the consumer groups.
//
// ReadTail only reads, in a single statement that takes no transaction id:
// it stores no offset, acknowledges nothing, takes no group's lock and
// belongs to no consumer group. A topic nobody has published to or
// subscribed to yet has no table; it reads as empty and ReadTail does not
// create it. Messages every consumer group has acknowledged may have been
// collected already (see Config.GCInterval) and are then not shown.
//
// A row whose metadata is not a JSON object of strings (written by another
// writer than this package's publisher; its consumer groups dead-letter
// it, see readingSchema) is shown with the entries that can be read (the
// string values of a JSON object, none otherwise), as the SQLite backend's
// tail shows such a message: one row must not end the tail, nor hide the
// messages after it.
func (b *Backend) ReadTail(ctx context.Context, topic string, after TailPosition, limit int) ([]backend.StoredMessage, TailPosition, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, after, fmt.Errorf("tail: %w", err)
	}
	if limit <= 0 {
		limit = 100
	}
	// created_at is a timestamp without time zone, filled with the
	// publisher's CURRENT_TIMESTAMP: read it in the session's time zone,
	// which is the publisher's, UTC for every session (see forceUTC).
	rows, err := b.db.QueryContext(ctx, `
		SELECT "offset", transaction_id::text, uuid, payload, metadata::text,
			created_at AT TIME ZONE current_setting('TimeZone')
		FROM `+b.schema.MessagesTable(topic)+`
		WHERE (transaction_id, "offset") > ($1::text::xid8, $2::bigint)
			AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY transaction_id, "offset"
		LIMIT $3`,
		strconv.FormatUint(after.TransactionID, 10), after.Offset, limit)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
			return nil, after, nil
		}
		return nil, after, fmt.Errorf("tail %s: %w", topic, err)
	}
	defer rows.Close()
	var out []backend.StoredMessage
	pos := after
	for rows.Next() {
		m := backend.StoredMessage{Topic: topic}
		var (
			xid  string
			meta sql.NullString
		)
		if err := rows.Scan(&m.Offset, &xid, &m.UUID, &m.Payload, &meta, &m.CreatedAt); err != nil {
			return nil, after, fmt.Errorf("tail %s: %w", topic, err)
		}
		id, err := strconv.ParseUint(xid, 10, 64)
		if err != nil {
			return nil, after, fmt.Errorf("tail %s: transaction id %q: %w", topic, xid, err)
		}
		if meta.Valid {
			if err := json.Unmarshal([]byte(meta.String), &m.Metadata); err != nil {
				m.Metadata = readableMetadata([]byte(meta.String))
			}
		}
		m.CreatedAt = m.CreatedAt.UTC()
		pos = TailPosition{TransactionID: id, Offset: m.Offset}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, after, fmt.Errorf("tail %s: %w", topic, err)
	}
	return out, pos, nil
}
