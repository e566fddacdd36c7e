package sqlite

import (
	"context"
	"fmt"

	"github.com/orderflow/orderflow/queue/backend"
)

var _ backend.GroupDropper = (*Backend)(nil)

// DropGroup removes consumer group from topic (see backend.GroupDropper):
// its subscription and its deliveries, so that the topic's low-water mark
// no longer counts it. What only it held is deleted by the next collection
// of a process on the file: a service collects within a minute even when
// it acks nothing (see collectableWithoutAcks), and at once when it does.
//
// The deliveries go GCBatch at a time, each batch a write transaction of
// its own, so that dropping a group that lags by millions of messages does
// not hold the file's write lock for seconds; the subscription goes with
// the last batch. A drop cut short (the process stopped, ctx ended) leaves
// the group subscribed with part of its deliveries gone: drop it again.
//
// A consumer of the group still running gets nothing more: its claims
// find no delivery, and an ack or nack of a message it holds fails as one
// whose lease ran out. A Subscribe (a process of the group starting)
// subscribes the group again, as a group new to the topic.
func (b *Backend) DropGroup(ctx context.Context, topic, group string) (backend.DroppedGroup, error) {
	out := backend.DroppedGroup{Topic: topic, ConsumerGroup: group}
	fail := func(err error) (backend.DroppedGroup, error) {
		return out, fmt.Errorf("drop consumer group %q of topic %q: %w", group, topic, err)
	}
	if err := backend.ValidateTopic(topic); err != nil {
		return fail(err)
	}
	if group == "" {
		return fail(fmt.Errorf("consumer group is required"))
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		op := &dropDeliveriesOp{topic: topic, group: group, limit: int64(b.cfg.GCBatch)}
		if err := b.submit(op, true); err != nil {
			return fail(err)
		}
		out.Pending += op.deleted
		if op.deleted < op.limit {
			break
		}
	}
	op := &dropGroupOp{topic: topic, group: group}
	if err := b.submit(op, true); err != nil {
		return fail(err)
	}
	out.Pending += op.deleted
	out.DeadLetters = op.deadLetters
	switch {
	case !op.topicKnown:
		return fail(backend.ErrUnknownTopic)
	case !op.subscribed:
		return fail(backend.ErrUnknownGroup)
	}
	return out, nil
}

// dropDeliveriesOp deletes up to limit deliveries of a group of a topic,
// oldest first, and says how many it deleted.
type dropDeliveriesOp struct {
	topic, group string
	limit        int64
	deleted      int64
}

func (op *dropDeliveriesOp) apply(ctx context.Context, w *writeTx) error {
	op.deleted = 0 // a batch may be applied again after a rollback
	res, err := w.exec(ctx, `
		DELETE FROM queue_deliveries WHERE topic = ? AND consumer_group = ? AND message_id IN (
			SELECT message_id FROM queue_deliveries WHERE topic = ? AND consumer_group = ? ORDER BY message_id LIMIT ?)`,
		op.topic, op.group, op.topic, op.group, op.limit)
	if err != nil {
		return fmt.Errorf("delete deliveries: %w", err)
	}
	op.deleted, err = res.RowsAffected()
	return err
}

// dropGroupOp deletes the subscription of a group to a topic and its
// deliveries left, and reports whether it was subscribed, whether the
// topic is known at all (as Inspector.Topics knows topics) and how many
// dead letters of the group on the topic are kept.
type dropGroupOp struct {
	topic, group string
	subscribed   bool
	topicKnown   bool
	deleted      int64
	deadLetters  int64
}

func (op *dropGroupOp) apply(ctx context.Context, w *writeTx) error {
	op.subscribed, op.topicKnown, op.deleted, op.deadLetters = false, false, 0, 0
	res, err := w.exec(ctx, `DELETE FROM queue_subscriptions WHERE topic = ? AND consumer_group = ?`, op.topic, op.group)
	if err != nil {
		return fmt.Errorf("delete subscription: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete subscription: %w", err)
	}
	op.subscribed = n > 0
	if res, err = w.exec(ctx, `DELETE FROM queue_deliveries WHERE topic = ? AND consumer_group = ?`, op.topic, op.group); err != nil {
		return fmt.Errorf("delete deliveries: %w", err)
	}
	if op.deleted, err = res.RowsAffected(); err != nil {
		return fmt.Errorf("delete deliveries: %w", err)
	}
	err = w.queryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM queue_topics WHERE topic = ?1)
			OR EXISTS (SELECT 1 FROM queue_subscriptions WHERE topic = ?1)
			OR EXISTS (SELECT 1 FROM queue_dead_letters WHERE topic = ?1),
			(SELECT COUNT(*) FROM queue_dead_letters WHERE topic = ?1 AND consumer_group = ?2)`,
		op.topic, op.group).Scan(&op.topicKnown, &op.deadLetters)
	if err != nil {
		return fmt.Errorf("look for topic: %w", err)
	}
	op.topicKnown = op.topicKnown || op.subscribed
	return nil
}
