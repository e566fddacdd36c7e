package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"

	"github.com/orderflow/orderflow/queue/backend"
)

// Inspector returns the store's read-only statistics.
func (b *Backend) Inspector() backend.Inspector { return inspector{b} }

type inspector struct{ b *Backend }

func (i inspector) Topics(ctx context.Context) ([]string, error) {
	return topics(ctx, i.b.readDB)
}

// querier is a read connection pool or a read transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func topics(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT topic FROM queue_topics
		UNION SELECT topic FROM queue_subscriptions
		UNION SELECT topic FROM queue_dead_letters
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("list topics: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Stats counts in one read transaction, so the numbers agree with each
// other. In flight means claimed with a live lease; retrying means waiting
// out a backoff after a failure. It reads through that transaction's one
// connection only: holding it while asking the pool for another would let
// a few concurrent calls take every read connection and wait for each
// other, and the subscribers' reads with them.
func (i inspector) Stats(ctx context.Context) ([]backend.TopicStats, error) {
	tx, err := i.b.readDB.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	now := i.b.nowMs()
	byTopic := map[string]*backend.TopicStats{}
	get := func(t string) *backend.TopicStats {
		if s, ok := byTopic[t]; ok {
			return s
		}
		s := &backend.TopicStats{Topic: t, Groups: []backend.GroupStats{}}
		byTopic[t] = s
		return s
	}
	names, err := topics(ctx, tx)
	if err != nil {
		return nil, err
	}
	for _, t := range names {
		get(t)
	}
	rows, err := tx.QueryContext(ctx, `SELECT topic, COUNT(*) FROM queue_messages GROUP BY topic`)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	for rows.Next() {
		var t string
		var n int64
		if err := rows.Scan(&t, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("stats: %w", err)
		}
		get(t).Stored = n
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, `SELECT topic, COUNT(*) FROM queue_dead_letters GROUP BY topic`)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	for rows.Next() {
		var t string
		var n int64
		if err := rows.Scan(&t, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("stats: %w", err)
		}
		get(t).DeadLetters = n
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, `
		SELECT g.topic, g.consumer_group, g.depth, g.in_flight, g.abandoned, g.retrying, g.max_attempt,
			(SELECT m.created_at FROM queue_messages m WHERE m.id = g.oldest_id)
		FROM (
			SELECT s.topic, s.consumer_group,
				COUNT(d.message_id) AS depth,
				COALESCE(SUM(d.in_flight = 1 AND d.visible_at > ?), 0) AS in_flight,
				COALESCE(SUM(d.in_flight = 1 AND d.visible_at <= ?), 0) AS abandoned,
				COALESCE(SUM(d.in_flight = 0 AND d.visible_at > ?), 0) AS retrying,
				COALESCE(MAX(d.attempts), 0) AS max_attempt,
				MIN(d.message_id) AS oldest_id
			FROM queue_subscriptions s
			LEFT JOIN queue_deliveries d ON d.topic = s.topic AND d.consumer_group = s.consumer_group
			GROUP BY s.topic, s.consumer_group
		) g
		ORDER BY g.topic, g.consumer_group`, now, now, now)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		var g backend.GroupStats
		var oldest *int64
		if err := rows.Scan(&t, &g.ConsumerGroup, &g.Depth, &g.InFlight, &g.Abandoned, &g.Retrying, &g.MaxAttempt, &oldest); err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		if oldest != nil {
			g.OldestAge = time.Duration(now-*oldest) * time.Millisecond
		}
		s := get(t)
		s.Groups = append(s.Groups, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	out := make([]backend.TopicStats, 0, len(byTopic))
	for _, s := range byTopic {
		out = append(out, *s)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Topic < out[b].Topic })
	return out, nil
}
