package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/queue/backend"
)

var _ backend.Tailer = (*Backend)(nil)

// ReadAfter implements backend.Tailer.
func (b *Backend) ReadAfter(ctx context.Context, topic string, after int64, limit int) ([]backend.StoredMessage, error) {
	rows, err := b.readDB.QueryContext(ctx,
		`SELECT id, uuid, payload, metadata, created_at FROM queue_messages WHERE topic = ? AND id > ? ORDER BY id LIMIT ?`,
		topic, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	defer rows.Close()
	var out []backend.StoredMessage
	for rows.Next() {
		m := backend.StoredMessage{Topic: topic}
		var meta string
		var created int64
		if err := rows.Scan(&m.Offset, &m.UUID, &m.Payload, &meta, &created); err != nil {
			return nil, fmt.Errorf("read %s: %w", topic, err)
		}
		_ = json.Unmarshal([]byte(meta), &m.Metadata)
		m.CreatedAt = time.UnixMilli(created).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// LastOffset implements backend.Tailer.
func (b *Backend) LastOffset(ctx context.Context, topic string) (int64, error) {
	var last *int64
	if err := b.readDB.QueryRowContext(ctx, `SELECT MAX(id) FROM queue_messages WHERE topic = ?`, topic).Scan(&last); err != nil {
		return 0, fmt.Errorf("last offset of %s: %w", topic, err)
	}
	if last == nil {
		// Nothing stored: start after the newest id of any topic.
		if err := b.readDB.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM queue_messages`).Scan(&last); err != nil {
			return 0, fmt.Errorf("last offset: %w", err)
		}
	}
	return *last, nil
}
