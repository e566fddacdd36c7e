package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// collectGarbage deletes, every GCInterval, the messages that every
// consumer group of their topic has acknowledged, GCBatchSize rows at a
// time. A group that subscribes later receives only what is still stored.
func (b *Backend) collectGarbage(ctx context.Context) {
	defer close(b.gcDone)
	ticker := time.NewTicker(b.cfg.GCInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if _, err := b.CollectGarbage(ctx); err != nil && ctx.Err() == nil {
			b.cfg.Logger.Error("Collect acknowledged messages", err, nil)
		}
	}
}

// CollectGarbage runs one collection over every topic and reports how many
// messages it deleted. A name in queue_topics that is no valid topic (see
// storedTopics) is logged, at each collection, and left alone.
func (b *Backend) CollectGarbage(ctx context.Context) (int64, error) {
	topics, invalid, err := storedTopics(ctx, b.db)
	if err != nil {
		return 0, fmt.Errorf("gc: list topics: %w", err)
	}
	for _, name := range invalid {
		b.cfg.Logger.Error("A name registered in queue_topics is not a valid topic; the collection leaves it alone (delete the row)",
			ValidateTopic(name), watermill.LogFields{"topic": name})
	}
	var total int64
	for _, topic := range topics {
		for {
			n, err := b.collectTopic(ctx, topic)
			if err != nil {
				return total, err
			}
			total += n
			if n < int64(b.cfg.GCBatchSize) {
				break
			}
		}
	}
	return total, nil
}

func (b *Backend) collectTopic(ctx context.Context, topic string) (int64, error) {
	messages := b.schema.MessagesTable(topic)
	offsets := b.offsets.MessagesOffsetsTable(topic)
	var exists bool
	if err := b.db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL`, messages, offsets).Scan(&exists); err != nil {
		return 0, fmt.Errorf("gc %s: %w", topic, err)
	}
	if !exists {
		return 0, nil // no subscriber yet: keep everything
	}
	// A message is collectable when some group exists and no group's
	// acknowledged position is before it. The row comparison matches
	// watermill-sql's own ordering by (transaction_id, offset).
	res, err := b.db.ExecContext(ctx, `
		DELETE FROM `+messages+` WHERE ctid IN (
			SELECT m.ctid FROM `+messages+` m
			WHERE EXISTS (SELECT 1 FROM `+offsets+`)
			AND NOT EXISTS (
				SELECT 1 FROM `+offsets+` o
				WHERE (m.transaction_id, m."offset") > (o.last_processed_transaction_id, o.offset_acked))
			LIMIT $1)`, b.cfg.GCBatchSize)
	if err != nil {
		return 0, fmt.Errorf("gc %s: %w", topic, err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		b.cfg.Logger.Debug("Collected acknowledged messages", watermill.LogFields{"topic": topic, "deleted": n})
	}
	return n, nil
}
