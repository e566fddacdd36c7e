package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"

	"github.com/orderflow/orderflow/queue/backend"
)

// inspector reads topics and statistics. Statistics are read in one
// REPEATABLE READ, read-only transaction, so they are consistent with each
// other.
type inspector struct {
	b *Backend
}

// Topics lists the topics registered in queue_topics (every topic this
// package ever published to or subscribed to), sorted. A name there that
// is no valid topic (see storedTopics) is left out.
func (i inspector) Topics(ctx context.Context) ([]string, error) {
	topics, _, err := storedTopics(ctx, i.b.db)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	return topics, nil
}

// queryer is what storedTopics reads with: *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// storedTopics returns the names registered in queue_topics, sorted: in
// topics those that are valid topic names (ValidateTopic), never nil, and
// the others in invalid. A topic's name becomes part of its tables' names
// in statements, so a stored one is checked as a caller's would be: this
// package registers only valid names, but the table is the database's, and
// a row put there by another writer must not put text of its own into a
// statement, nor stop what reads every topic.
func storedTopics(ctx context.Context, q queryer) (topics, invalid []string, err error) {
	rows, err := q.QueryContext(ctx, `SELECT topic FROM queue_topics ORDER BY topic`)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	topics = []string{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, nil, err
		}
		if ValidateTopic(t) != nil {
			invalid = append(invalid, t)
			continue
		}
		topics = append(topics, t)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return topics, invalid, nil
}

// Stats reports every registered topic (but those Topics leaves out), with
// its consumer groups sorted by name (a group appears once it has
// subscribed). How the numbers are made:
//
//   - Stored counts the topic's table, which watermill-sql never trims.
//   - Depth counts the messages after the group's stored offset. The offset
//     is stored when a batch ends, so messages acked inside the batch that
//     is being handled still count, as do messages of transactions that
//     committed but are not yet readable (see the package comment).
//   - InFlight counts messages handed to a handler and not yet acked or
//     nacked, from queue_delivery_attempts. A consumer that crashed while
//     handling leaves its message counted until it is delivered again.
//     With watermill-sql it is at most one per subscription.
//   - Retrying counts messages that were nacked and wait to be delivered
//     again.
//   - OldestAge is the age of the oldest message after the group's offset,
//     from the created_at column watermill-sql fills with the publisher's
//     CURRENT_TIMESTAMP as a time without zone: every session of this
//     package uses TimeZone UTC (see forceUTC), so publisher and inspector
//     agree whatever PGTZ or the URL say.
func (i inspector) Stats(ctx context.Context) (_ []backend.TopicStats, err error) {
	tx, err := i.b.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read stats: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	topics, _, err := storedTopics(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("read stats: list topics: %w", err)
	}
	stats := make([]backend.TopicStats, 0, len(topics))
	for _, topic := range topics {
		ts, err := i.topicStats(ctx, tx, topic)
		if err != nil {
			return nil, fmt.Errorf("read stats of topic %q: %w", topic, err)
		}
		stats = append(stats, ts)
	}
	return stats, nil
}

func (i inspector) topicStats(ctx context.Context, tx *sql.Tx, topic string) (backend.TopicStats, error) {
	ts := backend.TopicStats{Topic: topic, Groups: []backend.GroupStats{}}
	messages := i.b.schema.MessagesTable(topic)
	offsets := i.b.offsets.MessagesOffsetsTable(topic)

	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+messages).Scan(&ts.Stored); err != nil {
		return ts, fmt.Errorf("count messages: %w", err)
	}
	if err := tx.QueryRowContext(ctx,
		`SELECT count(*) FROM queue_dead_letters WHERE topic = $1`, topic).Scan(&ts.DeadLetters); err != nil {
		return ts, fmt.Errorf("count dead letters: %w", err)
	}

	rows, err := tx.QueryContext(ctx, `
		SELECT o.consumer_group, w.depth, w.oldest_age
		FROM `+offsets+` o
		CROSS JOIN LATERAL (
			SELECT count(*) AS depth,
				GREATEST(EXTRACT(EPOCH FROM LOCALTIMESTAMP - min(m.created_at)), 0)::float8 AS oldest_age
			FROM `+messages+` m
			WHERE (m.transaction_id, m."offset") > (o.last_processed_transaction_id, o.offset_acked)
		) w
		ORDER BY o.consumer_group`)
	if err != nil {
		return ts, fmt.Errorf("read group offsets: %w", err)
	}
	byGroup := map[string]int{}
	for rows.Next() {
		var (
			g   backend.GroupStats
			age sql.NullFloat64
		)
		if err := rows.Scan(&g.ConsumerGroup, &g.Depth, &age); err != nil {
			rows.Close()
			return ts, fmt.Errorf("read group offsets: %w", err)
		}
		if age.Valid {
			g.OldestAge = time.Duration(age.Float64 * float64(time.Second))
		}
		byGroup[g.ConsumerGroup] = len(ts.Groups)
		ts.Groups = append(ts.Groups, g)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return ts, fmt.Errorf("read group offsets: %w", err)
	}
	rows.Close()

	rows, err = tx.QueryContext(ctx, `
		SELECT consumer_group,
			count(*) FILTER (WHERE in_flight AND live.owner IS NOT NULL),
			count(*) FILTER (WHERE in_flight AND live.owner IS NULL),
			count(*) FILTER (WHERE NOT in_flight AND acked_in = 0 AND first_failed_at IS NOT NULL),
			COALESCE(max(attempts) FILTER (WHERE acked_in = 0), 0)
		FROM queue_delivery_attempts d
		LEFT JOIN (`+liveOwnersSQL+`) live ON live.owner = d.owner
		WHERE topic = $1
		GROUP BY consumer_group`, topic)
	if err != nil {
		return ts, fmt.Errorf("read deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			group                                     string
			inFlight, abandoned, retrying, maxAttempt int64
		)
		if err := rows.Scan(&group, &inFlight, &abandoned, &retrying, &maxAttempt); err != nil {
			return ts, fmt.Errorf("read deliveries: %w", err)
		}
		idx, ok := byGroup[group]
		if !ok {
			idx = len(ts.Groups)
			byGroup[group] = idx
			ts.Groups = append(ts.Groups, backend.GroupStats{ConsumerGroup: group})
		}
		ts.Groups[idx].InFlight = inFlight
		ts.Groups[idx].Abandoned = abandoned
		ts.Groups[idx].Retrying = retrying
		ts.Groups[idx].MaxAttempt = maxAttempt
	}
	if err := rows.Err(); err != nil {
		return ts, fmt.Errorf("read deliveries: %w", err)
	}
	sort.Slice(ts.Groups, func(a, b int) bool { return ts.Groups[a].ConsumerGroup < ts.Groups[b].ConsumerGroup })
	return ts, nil
}
