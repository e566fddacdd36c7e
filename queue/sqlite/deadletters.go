package sqlite

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

// DeadLetters returns the store's dead-letter table.
func (b *Backend) DeadLetters() backend.DeadLetterStore { return deadLetters{b} }

type deadLetters struct{ b *Backend }

type putDeadLetterOp struct{ dl backend.DeadLetter }

func (op *putDeadLetterOp) apply(ctx context.Context, w *writeTx) error {
	meta, err := json.Marshal(op.dl.Metadata)
	if err != nil {
		return fmt.Errorf("encode dead letter metadata: %w", err)
	}
	dl := op.dl
	if dl.DeadAt.IsZero() {
		dl.DeadAt = time.UnixMilli(w.now)
	}
	_, err = w.exec(ctx, `
		INSERT INTO queue_dead_letters (message_uuid, topic, consumer_group, payload, metadata, attempts, last_error, first_failed_at, last_failed_at, dead_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (consumer_group, message_uuid) DO UPDATE SET
			attempts = excluded.attempts,
			last_error = excluded.last_error,
			metadata = excluded.metadata,
			first_failed_at = MIN(first_failed_at, excluded.first_failed_at),
			last_failed_at = MAX(last_failed_at, excluded.last_failed_at),
			dead_at = MAX(excluded.dead_at, dead_at + 1)`,
		dl.MessageUUID, dl.Topic, dl.ConsumerGroup, dl.Payload, string(meta), dl.Attempts, dl.LastError,
		dl.FirstFailedAt.UnixMilli(), dl.LastFailedAt.UnixMilli(), dl.DeadAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("insert dead letter: %w", err)
	}
	return nil
}

func (d deadLetters) Put(ctx context.Context, dl backend.DeadLetter) error {
	if dl.MessageUUID == "" || dl.Topic == "" || dl.ConsumerGroup == "" {
		return errors.New("put dead letter: message uuid, topic and consumer group are required")
	}
	return d.b.submit(&putDeadLetterOp{dl: dl}, true)
}

const deadLetterColumns = `id, message_uuid, topic, consumer_group, payload, COALESCE(length(payload), 0), metadata, attempts, last_error, first_failed_at, last_failed_at, dead_at`

// listColumns are deadLetterColumns with the payload cut to its preview
// (SQLite's substr counts bytes in a BLOB), so that a listing does not read
// whole payloads.
var listColumns = strings.Replace(deadLetterColumns, "payload,", fmt.Sprintf("substr(payload, 1, %d),", backend.ListPayloadPreview), 1)

func scanDeadLetter(sc interface{ Scan(...any) error }) (backend.DeadLetter, error) {
	var dl backend.DeadLetter
	var meta string
	var first, last, dead int64
	if err := sc.Scan(&dl.ID, &dl.MessageUUID, &dl.Topic, &dl.ConsumerGroup, &dl.Payload, &dl.PayloadSize, &meta, &dl.Attempts, &dl.LastError, &first, &last, &dead); err != nil {
		return dl, err
	}
	if dl.PayloadCut() {
		dl.Payload = backend.TrimPartialRune(dl.Payload)
	}
	if err := json.Unmarshal([]byte(meta), &dl.Metadata); err != nil {
		dl.Metadata = map[string]string{"metadata_error": err.Error()}
	}
	dl.FirstFailedAt = time.UnixMilli(first).UTC()
	dl.LastFailedAt = time.UnixMilli(last).UTC()
	dl.DeadAt = time.UnixMilli(dead).UTC()
	return dl, nil
}

func filterSQL(f backend.DeadLetterFilter) (string, []any) {
	var where []string
	var args []any
	if f.Topic != "" {
		where = append(where, "topic = ?")
		args = append(args, f.Topic)
	}
	if f.ConsumerGroup != "" {
		where = append(where, "consumer_group = ?")
		args = append(args, f.ConsumerGroup)
	}
	if f.AfterID > 0 {
		where = append(where, "id > ?")
		args = append(args, f.AfterID)
	}
	if !f.DeadBefore.IsZero() {
		where = append(where, "dead_at < ?")
		args = append(args, f.DeadBefore.UnixMilli())
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

func (d deadLetters) List(ctx context.Context, f backend.DeadLetterFilter) ([]backend.DeadLetter, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	where, args := filterSQL(f)
	order := "id"
	if f.Newest {
		order = "id DESC"
	}
	rows, err := d.b.readDB.QueryContext(ctx, `SELECT `+listColumns+` FROM queue_dead_letters`+where+` ORDER BY `+order+` LIMIT ?`, append(args, limit)...)
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
	return out, rows.Err()
}

func (d deadLetters) Get(ctx context.Context, id int64) (backend.DeadLetter, error) {
	dl, err := scanDeadLetter(d.b.readDB.QueryRowContext(ctx, `SELECT `+deadLetterColumns+` FROM queue_dead_letters WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return dl, fmt.Errorf("dead letter %d: %w", id, backend.ErrNotFound)
	}
	if err != nil {
		return dl, fmt.Errorf("get dead letter %d: %w", id, err)
	}
	return dl, nil
}

type deleteDeadLettersOp struct {
	where   string
	args    []any
	deleted int64
}

func (op *deleteDeadLettersOp) apply(ctx context.Context, w *writeTx) error {
	res, err := w.conn.ExecContext(ctx, `DELETE FROM queue_dead_letters`+op.where, op.args...)
	if err != nil {
		return fmt.Errorf("delete dead letters: %w", err)
	}
	op.deleted, _ = res.RowsAffected()
	return nil
}

func (d deadLetters) Delete(ctx context.Context, id int64) error {
	op := &deleteDeadLettersOp{where: " WHERE id = ?", args: []any{id}}
	if err := d.b.submit(op, true); err != nil {
		return err
	}
	if op.deleted == 0 {
		return fmt.Errorf("dead letter %d: %w", id, backend.ErrNotFound)
	}
	return nil
}

func (d deadLetters) DeleteIfUnchanged(ctx context.Context, id int64, deadAt time.Time) (bool, error) {
	op := &deleteDeadLettersOp{where: " WHERE id = ? AND dead_at = ?", args: []any{id, deadAt.UnixMilli()}}
	if err := d.b.submit(op, true); err != nil {
		return false, err
	}
	return op.deleted > 0, nil
}

func (d deadLetters) Purge(ctx context.Context, f backend.DeadLetterFilter) (int, error) {
	where, args := filterSQL(f)
	op := &deleteDeadLettersOp{where: where, args: args}
	if err := d.b.submit(op, true); err != nil {
		return 0, err
	}
	return int(op.deleted), nil
}
