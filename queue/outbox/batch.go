package outbox

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/retry"
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
// If that publish fails (or takes longer than AckDeadline, or panics), the
// batch's transaction is rolled back (a call still hanging then keeps any
// other forwarding transaction from beginning until it returns:
// destinationCalls), so the offset stays and nothing is lost; the topics
// of the batch that the destination took, then or later, are not sent
// again (lateDeliveries: a destination slower than the ack deadline at
// every call would otherwise be sent the same batch for ever; after a
// restart they are: at least once); the forwarder pauses for
// RetryInterval and forwards the next batch message by message, so that
// one message the destination refuses is put back alone
// (requeueOnFailure) instead of failing its batch for ever.
// A batch that goes through that way turns holding back on again.
//
// A message put back after a failed forward is stored again when the
// batch's offset moves, after the rest of the batch (put back untried
// during the pause): the next batch starts with the messages behind it, so
// a message the destination refuses for good is tried once per pause while
// everything else goes through.

// heldBatch is what the forwarder's destination holds back: the messages
// of the forwarding batch in progress, in the order they were forwarded.
// The router's handler adds to it and the subscriber's goroutine takes
// from it, one after the other (the subscriber waits for each ack).
type heldBatch struct {
	mu      sync.Mutex
	current *sql.Tx // the subscriber transaction of the batch in progress
	msgs    []heldMessage
	off     bool // forward message by message until a batch goes through
	failed  bool // a message of the batch in progress failed to forward
	// failedMsgs are the envelopes of the batch in progress whose
	// forward failed, to be stored again after the rest of the batch.
	failedMsgs []*message.Message
}

type heldMessage struct {
	topic string
	msg   *message.Message
}

// begin starts holding for the batch of transaction tx (probingDB.BeginTx
// calls it). Messages still held belong to a batch that ended without
// reaching its offset (a failed query, a closing subscriber, no ack at
// all): they are dropped, and read again.
func (b *heldBatch) begin(tx *sql.Tx) {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.msgs)
	b.current, b.msgs, b.failed, b.failedMsgs = tx, b.msgs[:0], false, nil
}

// markFailed notes that forwarding a message of the batch in progress
// failed (requeueOnFailure puts it back).
func (b *heldBatch) markFailed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failed = true
}

// putBackLast keeps the envelope again, the copy of a message of the batch
// of transaction tx whose forward failed, to be stored after the rest of
// the batch (takeFailed). It reports false when tx is not the batch in
// progress.
func (b *heldBatch) putBackLast(tx *sql.Tx, again *message.Message) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if tx != b.current {
		return false
	}
	b.failedMsgs = append(b.failedMsgs, again)
	return true
}

// takeFailed returns the envelopes putBackLast kept for the batch in
// progress, and forgets them.
func (b *heldBatch) takeFailed() []*message.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	msgs := b.failedMsgs
	b.failedMsgs = nil
	return msgs
}

// resume turns holding back on again after a batch forwarded message by
// message in which nothing failed.
func (b *heldBatch) resume() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.failed {
		b.off = false
	}
}

// hold adds msgs for topic, forwarded in transaction tx, if tx is the
// batch in progress and holding back is on. A message forwarded in an
// earlier transaction is not held: its handler outlived the subscriber's
// AckDeadline and the subscriber moved on without its ack, so it is read
// again anyway; it goes out at once, as without batching.
func (b *heldBatch) hold(tx *sql.Tx, topic string, msgs []*message.Message) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.off || tx != b.current {
		return false
	}
	for _, m := range msgs {
		b.msgs = append(b.msgs, heldMessage{topic: topic, msg: m})
	}
	return true
}

// take returns the transaction of the batch in progress and the messages
// held for it, and empties the batch.
func (b *heldBatch) take() (*sql.Tx, []heldMessage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	msgs := b.msgs
	b.msgs = nil
	return b.current, msgs
}

// stop turns holding back off, after a failed batch.
func (b *heldBatch) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.off = true
}

// holdingPublisher is the destination components/forwarder publishes to:
// it holds back messages forwarded in the subscriber transaction in
// progress and passes any other straight to dst.
type holdingPublisher struct {
	dst   message.Publisher
	held  *heldBatch
	calls *destinationCalls // Forwarder.calls
	late  *lateDeliveries   // Forwarder.late
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
	if msgs = p.late.undelivered(topic, msgs); len(msgs) == 0 {
		return nil // taken by an earlier call that the forwarder gave up on
	}
	defer p.calls.begin()()
	if err := p.dst.Publish(topic, msgs...); err != nil {
		return err
	}
	if msgs[0].Context().Err() != nil {
		// The subscriber stopped waiting for this message (its ack
		// deadline passed): it is read again, and skipped then.
		p.late.add(topic, msgs)
	}
	return nil
}

// Close does nothing: the Forwarder does not close its destination.
func (holdingPublisher) Close() error { return nil }

// publishTogether publishes msgs to the destination: one Publish per
// topic, each with that topic's messages in order, all at once, so that a
// store committing concurrent publishes together (the SQLite queue's group
// commit) commits the batch in one transaction. It waits for them at most
// AckDeadline, which bounds how long a hung destination holds the
// service's write lock; Publish calls still running then go on in the
// background (Run waits for them, up to CloseTimeout). A panicking Publish
// is an error.
func (f *Forwarder) publishTogether(msgs []heldMessage) error {
	var topics []string
	byTopic := make(map[string][]*message.Message)
	for _, m := range msgs {
		if _, ok := byTopic[m.topic]; !ok {
			topics = append(topics, m.topic)
		}
		byTopic[m.topic] = append(byTopic[m.topic], m.msg)
	}
	// Leave out what an earlier batch's call, given up on, delivered.
	topics = slices.DeleteFunc(topics, func(topic string) bool {
		byTopic[topic] = f.late.undelivered(topic, byTopic[topic])
		return len(byTopic[topic]) == 0
	})
	calls := &batchCalls{late: f.late}
	results := make(chan error, len(topics)) // late results never block
	for _, topic := range topics {
		end := f.calls.begin()
		f.publishing.Go(func() {
			var err error
			func() {
				// Ends the call before the result (the next batch must
				// not find it still running), after the success is
				// noted (a next batch begun in between would not know
				// these messages were taken, and send them again).
				defer end()
				err = publishRecovering(f.dst, topic, byTopic[topic])
				if err == nil {
					calls.succeed(topic, byTopic[topic])
				}
			}()
			results <- err
		})
	}
	deadline := time.NewTimer(f.cfg.AckDeadline)
	defer deadline.Stop()
	var errs []error
	for range topics {
		select {
		case err := <-results:
			errs = append(errs, err)
		case <-deadline.C:
			calls.giveUp()
			return errors.Join(append(errs, fmt.Errorf("publishing the batch took longer than the ack deadline (%s)", f.cfg.AckDeadline))...)
		case <-f.giveUp:
			calls.giveUp()
			return errors.Join(append(errs, errStopGaveUp)...)
		}
	}
	if err := errors.Join(errs...); err != nil {
		calls.giveUp()
		return err
	}
	return nil
}

func publishRecovering(dst message.Publisher, topic string, msgs []*message.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("publish %d message(s) to %s: panic: %v", len(msgs), topic, r)
		}
	}()
	if err := dst.Publish(topic, msgs...); err != nil {
		return fmt.Errorf("publish %d message(s) to %s: %w", len(msgs), topic, err)
	}
	return nil
}

// errStopGaveUp is publishTogether's error when Shutdown's context ended
// while the batch's publish was still running.
var errStopGaveUp = errors.New("the stop gave up waiting for the destination")

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

// publishHeld publishes the held messages of the batch in progress and
// stores again, last, the ones whose forward failed; see the comment at
// the top of this file.
func (f *Forwarder) publishHeld() {
	tx, msgs := f.held.take()
	if len(msgs) == 0 {
		f.held.resume() // holding back is off, or the batch was all requeues
	} else if err := f.publishTogether(msgs); err != nil {
		f.cool.trip(f.cfg.RetryInterval)
		f.held.stop()
		if errors.Is(err, errStopGaveUp) {
			// What a bounded stop allows: not a failure of the forward.
			f.batchFailed.Store(true)
			retry.Warn(f.logger, "Forwarding a batch was given up by the stop; it stays in the outbox and is forwarded again after the restart", nil,
				watermill.LogFields{"messages": len(msgs)})
			if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
				f.logger.Error("Cannot roll back the forwarding batch", rbErr, nil)
			}
			return
		}
		f.failBatch(tx, "Forwarding a batch failed; it stays in the outbox and is forwarded again message by message", err,
			watermill.LogFields{"messages": len(msgs), "retry_in": f.cfg.RetryInterval})
		return
	}
	failed := f.held.takeFailed()
	if len(failed) == 0 {
		return
	}
	q, err := f.schema.InsertQuery(f.cfg.ForwarderTopic, failed)
	if err == nil {
		_, err = tx.Exec(q.Query, q.Args...)
	}
	if err != nil {
		f.cool.trip(f.cfg.RetryInterval)
		f.failBatch(tx, "Cannot put failed messages back in the outbox; the batch stays and is forwarded again", err,
			watermill.LogFields{"messages": len(failed), "retry_in": f.cfg.RetryInterval})
	}
}

// failBatch rolls the batch in progress back, so that its offset stays
// (the offset query then fails on the finished transaction), and logs why.
func (f *Forwarder) failBatch(tx *sql.Tx, msg string, err error, fields watermill.LogFields) {
	f.batchFailed.Store(true)
	f.logger.Error(msg, err, fields)
	if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
		f.logger.Error("Cannot roll back the forwarding batch", rbErr, nil)
	}
}
