package outbox

import (
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Publishing a forwarding batch together.
//
// watermill-sql's subscriber hands the forwarding handler one message at a
// time and waits for its ack before the next, and components/forwarder
// publishes each before acking it. Publishing them one by one made every
// message its own commit on the shared queue: on SQLite, a write lock
// handed between processes per message, and most of the order service's
// queue commits. So the forwarder's destination holds the messages of a
// batch back (holdingPublisher) and publishes them together just before
// the subscriber moves the batch's offset (forwarderOffsets.AckMessageQuery,
// which the subscriber calls in the batch's transaction, before that
// transaction's only write of the offset): the offset never moves past a
// message that is not on the queue.
//
// If that publish fails, the batch's transaction is rolled back, so the
// offset stays and nothing is lost; the forwarder pauses for RetryInterval
// and forwards the next batch message by message, so that one message the
// destination refuses is put back alone (requeueOnFailure) instead of
// failing its batch for ever. A batch that goes through that way turns
// holding back on again.

// heldBatch is what the forwarder's destination holds back: the messages
// of the forwarding batch in progress, in the order they were forwarded.
// The router's handler adds to it and the subscriber's goroutine takes
// from it, one after the other (the subscriber waits for each ack).
type heldBatch struct {
	mu   sync.Mutex
	tx   *sql.Tx // the subscriber transaction the messages came in
	msgs []heldMessage
	off  bool // forward message by message until a batch goes through
}

type heldMessage struct {
	topic string
	msg   *message.Message
}

// hold adds msgs for topic, forwarded in transaction tx, unless holding
// back is off. Messages still held from another transaction belong to a
// batch that was rolled back without moving its offset (a failed query,
// a closing subscriber); they are dropped, and read again.
func (b *heldBatch) hold(tx *sql.Tx, topic string, msgs []*message.Message) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.off {
		return false
	}
	if b.tx != tx {
		clear(b.msgs)
		b.tx, b.msgs = tx, b.msgs[:0]
	}
	for _, m := range msgs {
		b.msgs = append(b.msgs, heldMessage{topic: topic, msg: m})
	}
	return true
}

// take empties the batch and returns what it held.
func (b *heldBatch) take() (*sql.Tx, []heldMessage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tx, msgs := b.tx, b.msgs
	b.tx, b.msgs = nil, nil
	return tx, msgs
}

// setOff turns holding back off (after a failed batch) or on again.
func (b *heldBatch) setOff(off bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.off = off
}

// holdingPublisher is the destination components/forwarder publishes to:
// it holds back messages forwarded in a subscriber transaction and passes
// any other straight to dst.
type holdingPublisher struct {
	dst  message.Publisher
	held *heldBatch
}

func (p holdingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	// components/forwarder gives the message it unwraps the envelope's
	// context, which carries watermill-sql's transaction.
	if tx, ok := wsql.TxFromContext(msgs[0].Context()); ok && p.held.hold(tx, topic, msgs) {
		return nil
	}
	return p.dst.Publish(topic, msgs...)
}

// Close does nothing: the Forwarder does not close its destination.
func (holdingPublisher) Close() error { return nil }

// publishTogether publishes msgs to dst: one Publish per topic, each with
// that topic's messages in order, all at once, so that a store committing
// concurrent publishes together (the SQLite queue's group commit) commits
// the batch in one transaction. It returns when every Publish has.
func publishTogether(dst message.Publisher, msgs []heldMessage) error {
	var topics []string
	byTopic := make(map[string][]*message.Message)
	for _, m := range msgs {
		if _, ok := byTopic[m.topic]; !ok {
			topics = append(topics, m.topic)
		}
		byTopic[m.topic] = append(byTopic[m.topic], m.msg)
	}
	if len(topics) == 1 {
		return dst.Publish(topics[0], byTopic[topics[0]]...)
	}
	errs := make([]error, len(topics))
	var wg sync.WaitGroup
	for i, topic := range topics {
		wg.Go(func() {
			if err := dst.Publish(topic, byTopic[topic]...); err != nil {
				errs[i] = fmt.Errorf("publish %d message(s) to %s: %w", len(byTopic[topic]), topic, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// forwarderOffsets is the Forwarder's OffsetsAdapter: OffsetsAdapter, and
// before the offset moves, the batch's held messages are published.
type forwarderOffsets struct {
	OffsetsAdapter
	f *Forwarder
}

// AckMessageQuery publishes what the batch holds, then returns the query
// that moves the offset. If publishing fails, it has rolled the batch's
// transaction back, and the query fails on it (sql.ErrTxDone).
func (a forwarderOffsets) AckMessageQuery(topic string, row wsql.Row, consumerGroup string) wsql.Query {
	a.f.publishHeld()
	return a.OffsetsAdapter.AckMessageQuery(topic, row, consumerGroup)
}

// publishHeld publishes the held messages of the batch in progress; see
// the comment at the top of this file.
func (f *Forwarder) publishHeld() {
	tx, msgs := f.held.take()
	if len(msgs) == 0 {
		f.held.setOff(false) // a batch forwarded message by message went through
		return
	}
	err := publishTogether(f.dst, msgs)
	if err == nil {
		return
	}
	f.cool.trip(f.cfg.RetryInterval)
	f.held.setOff(true)
	f.batchFailed.Store(true)
	f.logger.Error("Forwarding a batch failed; it stays in the outbox and is forwarded again message by message", err,
		watermill.LogFields{"messages": len(msgs), "retry_in": f.cfg.RetryInterval})
	if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
		f.logger.Error("Cannot roll back the forwarding batch", rbErr, nil)
	}
}
