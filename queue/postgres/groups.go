package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/queue/backend"
)

var _ backend.GroupDropper = (*Backend)(nil)

// DropGroup removes consumer group from topic (see backend.GroupDropper):
// its row in the topic's offsets table, whose position is what holds the
// topic's messages back from collection (CollectGarbage keeps every
// message after any group's position), and its rows in
// queue_delivery_attempts, in one transaction. What only the group held
// is then deleted by the next collection of a service (Config.GCInterval);
// a topic left without groups keeps its messages until a group subscribes,
// as one nobody ever subscribed to does.
//
// It first takes the group's lock (see offsetsAdapter), waiting for the
// batch a consumer of the group may be handling: that batch's offset
// update would store the group again. A consumer of the group still
// running afterwards reads nothing more (it has no position), until it
// subscribes again, as a process does when it starts: that stores a zero
// position, and the group receives every message of the topic still
// stored.
func (b *Backend) DropGroup(ctx context.Context, topic, group string) (_ backend.DroppedGroup, err error) {
	out := backend.DroppedGroup{Topic: topic, ConsumerGroup: group}
	defer func() {
		if err != nil {
			err = fmt.Errorf("drop consumer group %q of topic %q: %w", group, topic, err)
		}
	}()
	if err := ValidateTopic(topic); err != nil {
		return out, err
	}
	if group == "" {
		return out, errors.New("consumer group is required")
	}
	tx, err := b.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return out, err
	}
	defer func() { _ = tx.Rollback() }()
	var known, tables bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM queue_topics WHERE topic = $1),
			to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL`,
		topic, b.schema.MessagesTable(topic), b.offsets.MessagesOffsetsTable(topic)).Scan(&known, &tables); err != nil {
		return out, fmt.Errorf("look for topic: %w", err)
	}
	if !known {
		return out, backend.ErrUnknownTopic
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, groupLockKey(topic, group)); err != nil {
		return out, fmt.Errorf("take the group's lock: %w", err)
	}
	var offsetRows int64
	if tables {
		messages, offsets := b.schema.MessagesTable(topic), b.offsets.MessagesOffsetsTable(topic)
		if err := tx.QueryRowContext(ctx, `
			SELECT count(*) FROM `+messages+` m JOIN `+offsets+` o
				ON (m.transaction_id, m."offset") > (o.last_processed_transaction_id, o.offset_acked)
			WHERE o.consumer_group = $1`, group).Scan(&out.Pending); err != nil {
			return out, fmt.Errorf("count pending messages: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM `+offsets+` WHERE consumer_group = $1`, group)
		if err != nil {
			return out, fmt.Errorf("delete offset: %w", err)
		}
		if offsetRows, err = res.RowsAffected(); err != nil {
			return out, fmt.Errorf("delete offset: %w", err)
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM queue_delivery_attempts WHERE topic = $1 AND consumer_group = $2`, topic, group)
	if err != nil {
		return out, fmt.Errorf("delete delivery records: %w", err)
	}
	records, err := res.RowsAffected()
	if err != nil {
		return out, fmt.Errorf("delete delivery records: %w", err)
	}
	if offsetRows == 0 && records == 0 {
		// As Inspector.Stats, which lists a group with either.
		return out, backend.ErrUnknownGroup
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM queue_dead_letters WHERE topic = $1 AND consumer_group = $2`,
		topic, group).Scan(&out.DeadLetters); err != nil {
		return out, fmt.Errorf("count dead letters: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return out, fmt.Errorf("commit: %w", err)
	}
	return out, nil
}
