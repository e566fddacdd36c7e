package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orderflow/orderflow/queue/backend"
)

// defaultListLimit is what List returns at most when the filter sets no
// limit.
const defaultListLimit = 100

// deadLetters is the backend.DeadLetterStore on table queue_dead_letters.
// Times are stored with microsecond precision and returned in UTC; a zero
// FirstFailedAt or LastFailedAt is stored as NULL and read back as zero, a
// zero DeadAt becomes the server's now(). The first failure's time comes
// from the server (the delivery record's) and the others from the host
// that dead-letters the message, whose clock may be behind: the last
// failure is stored no earlier than the first, and the dead-lettering no
// earlier than either.
type deadLetters struct {
	db *sql.DB
}

const deadLetterColumns = `id, message_uuid, topic, consumer_group, payload, COALESCE(octet_length(payload), 0), metadata, attempts,
	last_error, first_failed_at, last_failed_at, dead_at`

// listColumns are deadLetterColumns with the payload cut to its preview,
// so that a listing does not read whole payloads.
var listColumns = strings.Replace(deadLetterColumns, "payload,", fmt.Sprintf("substring(payload from 1 for %d),", backend.ListPayloadPreview), 1)

// Put stores dl once per (consumer group, message UUID); a second Put of
// the same pair is a no-op. MessageUUID, Topic and ConsumerGroup are
// required; dl.ID is ignored.
func (s deadLetters) Put(ctx context.Context, dl backend.DeadLetter) error {
	if dl.MessageUUID == "" || dl.Topic == "" || dl.ConsumerGroup == "" {
		return errors.New("put dead letter: message uuid, topic and consumer group are required")
	}
	md := dl.Metadata
	if md == nil {
		md = map[string]string{}
	}
	mdJSON, err := json.Marshal(md)
	if err != nil {
		return fmt.Errorf("put dead letter %s: encode metadata: %w", dl.MessageUUID, err)
	}
	_, err = s.db.ExecContext(ctx, `
		INSERT INTO queue_dead_letters (message_uuid, topic, consumer_group, payload, metadata,
			attempts, last_error, first_failed_at, last_failed_at, dead_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8::timestamptz, GREATEST($9::timestamptz, $8::timestamptz),
			GREATEST(COALESCE($10::timestamptz, now()), $9::timestamptz, $8::timestamptz))
		ON CONFLICT (consumer_group, message_uuid) DO UPDATE SET
			attempts = EXCLUDED.attempts,
			last_error = EXCLUDED.last_error,
			metadata = EXCLUDED.metadata,
			first_failed_at = LEAST(queue_dead_letters.first_failed_at, EXCLUDED.first_failed_at),
			last_failed_at = GREATEST(queue_dead_letters.last_failed_at, EXCLUDED.last_failed_at),
			dead_at = GREATEST(EXCLUDED.dead_at, queue_dead_letters.dead_at + interval '1 millisecond')`,
		dl.MessageUUID, dl.Topic, dl.ConsumerGroup, dl.Payload, string(mdJSON),
		dl.Attempts, backend.StorableText(dl.LastError), nullTime(dl.FirstFailedAt), nullTime(dl.LastFailedAt), nullTime(dl.DeadAt))
	if err != nil {
		return fmt.Errorf("put dead letter %s: %w", dl.MessageUUID, err)
	}
	return nil
}

// List returns the dead letters matching f, oldest (lowest id) first, at
// most f.Limit (default 100).
func (s deadLetters) List(ctx context.Context, f backend.DeadLetterFilter) ([]backend.DeadLetter, error) {
	if f.Limit < 0 {
		return nil, errors.New("list dead letters: limit must not be negative")
	}
	limit := f.Limit
	if limit == 0 {
		limit = defaultListLimit
	}
	where, args := filterSQL(f)
	args = append(args, limit)
	order := "id"
	if f.Newest {
		order = "id DESC"
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+listColumns+` FROM queue_dead_letters`+where+
			fmt.Sprintf(` ORDER BY %s LIMIT $%d`, order, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var out []backend.DeadLetter
	for rows.Next() {
		dl, err := scanDeadLetter(rows)
		if err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		out = append(out, dl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// Get returns one dead letter, or backend.ErrNotFound (wrapped).
func (s deadLetters) Get(ctx context.Context, id int64) (backend.DeadLetter, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+deadLetterColumns+` FROM queue_dead_letters WHERE id = $1`, id)
	dl, err := scanDeadLetter(row)
	if errors.Is(err, sql.ErrNoRows) {
		return backend.DeadLetter{}, fmt.Errorf("dead letter %d: %w", id, backend.ErrNotFound)
	}
	if err != nil {
		return backend.DeadLetter{}, fmt.Errorf("get dead letter %d: %w", id, err)
	}
	return dl, nil
}

// Delete removes one dead letter, or returns backend.ErrNotFound (wrapped).
func (s deadLetters) Delete(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM queue_dead_letters WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete dead letter %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete dead letter %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("dead letter %d: %w", id, backend.ErrNotFound)
	}
	return nil
}

// DeleteIfUnchanged deletes dead letter id if its dead_at is still deadAt.
func (s deadLetters) DeleteIfUnchanged(ctx context.Context, id int64, deadAt time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM queue_dead_letters WHERE id = $1 AND dead_at = $2`, id, deadAt)
	if err != nil {
		return false, fmt.Errorf("delete dead letter %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete dead letter %d: %w", id, err)
	}
	return n > 0, nil
}

// Purge deletes every dead letter matching f (f.Limit is ignored) and
// returns how many.
func (s deadLetters) Purge(ctx context.Context, f backend.DeadLetterFilter) (int, error) {
	where, args := filterSQL(f)
	res, err := s.db.ExecContext(ctx, `DELETE FROM queue_dead_letters`+where, args...)
	if err != nil {
		return 0, fmt.Errorf("purge dead letters: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge dead letters: %w", err)
	}
	return int(n), nil
}

func filterSQL(f backend.DeadLetterFilter) (string, []any) {
	var conds []string
	var args []any
	if f.Topic != "" {
		args = append(args, f.Topic)
		conds = append(conds, fmt.Sprintf("topic = $%d", len(args)))
	}
	if f.ConsumerGroup != "" {
		args = append(args, f.ConsumerGroup)
		conds = append(conds, fmt.Sprintf("consumer_group = $%d", len(args)))
	}
	if f.AfterID > 0 {
		args = append(args, f.AfterID)
		conds = append(conds, fmt.Sprintf("id > $%d", len(args)))
	}
	if !f.DeadBefore.IsZero() {
		args = append(args, f.DeadBefore)
		conds = append(conds, fmt.Sprintf("dead_at < $%d", len(args)))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

type scanner interface{ Scan(dest ...any) error }

func scanDeadLetter(row scanner) (backend.DeadLetter, error) {
	var (
		dl                    backend.DeadLetter
		md                    []byte
		firstFailed, lastFail sql.NullTime
	)
	if err := row.Scan(&dl.ID, &dl.MessageUUID, &dl.Topic, &dl.ConsumerGroup, &dl.Payload, &dl.PayloadSize, &md,
		&dl.Attempts, &dl.LastError, &firstFailed, &lastFail, &dl.DeadAt); err != nil {
		return backend.DeadLetter{}, err
	}
	if dl.PayloadCut() {
		dl.Payload = backend.TrimPartialRune(dl.Payload)
	}
	if err := json.Unmarshal(md, &dl.Metadata); err != nil {
		return backend.DeadLetter{}, fmt.Errorf("decode metadata of dead letter %d: %w", dl.ID, err)
	}
	if firstFailed.Valid {
		dl.FirstFailedAt = firstFailed.Time.UTC()
	}
	if lastFail.Valid {
		dl.LastFailedAt = lastFail.Time.UTC()
	}
	dl.DeadAt = dl.DeadAt.UTC()
	return dl, nil
}

func nullTime(t time.Time) sql.NullTime {
	return sql.NullTime{Time: t, Valid: !t.IsZero()}
}
