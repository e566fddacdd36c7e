package outbox

import (
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// lateDeliveriesKept bounds how many messages lateDeliveries remembers, at
// least: a destination that takes every call past the ack deadline is
// given one batch per call, and the messages of a few batches must stay
// remembered until they are read again, so a forwarder whose BatchSize is
// larger keeps lateBatchesKept batches (newLateDeliveries).
const (
	lateDeliveriesKept = 4096
	lateBatchesKept    = 4
)

// lateDeliveries remembers the messages the destination took after the
// forwarder had stopped waiting for them: a batch's Publish that returned
// past the ack deadline (or while another topic of its batch failed), a
// message forwarded alone that the subscriber gave up on. Their offset
// did not move, so they are read again; sending them again would be
// harmless once (at least once, the consumers' inboxes drop it) but a
// destination that is slower than the ack deadline at every call would
// then be sent the same messages for ever, and the outbox would never
// drain. The forwarder skips the messages remembered here instead.
//
// It lives in memory only: after a restart they are sent again, as any
// message forwarded and not yet acked in the outbox. The oldest are
// forgotten past kept. It is safe for concurrent use.
type lateDeliveries struct {
	kept int // how many keys are remembered at most

	mu    sync.Mutex
	keys  map[deliveryKey]struct{}
	order []deliveryKey // a ring of the keys, oldest at next once full
	next  int
}

// deliveryKey is a message as the destination took it. Message ids are
// unique (queue.NewMessageID); the topic keeps a message stored for two
// topics apart.
type deliveryKey struct{ topic, uuid string }

// newLateDeliveries remembers the late deliveries of a forwarder whose
// batches hold batchSize messages.
func newLateDeliveries(batchSize int) *lateDeliveries {
	return &lateDeliveries{kept: max(lateDeliveriesKept, lateBatchesKept*batchSize), keys: map[deliveryKey]struct{}{}}
}

// add remembers msgs, taken by the destination on topic.
func (l *lateDeliveries) add(topic string, msgs []*message.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range msgs {
		k := deliveryKey{topic: topic, uuid: m.UUID}
		if _, ok := l.keys[k]; ok {
			continue
		}
		if len(l.order) < l.kept {
			l.order = append(l.order, k)
		} else {
			delete(l.keys, l.order[l.next])
			l.order[l.next] = k
			l.next = (l.next + 1) % l.kept
		}
		l.keys[k] = struct{}{}
	}
}

// undelivered returns the messages of msgs the destination has not taken
// on topic; msgs itself when that is all of them.
func (l *lateDeliveries) undelivered(topic string, msgs []*message.Message) []*message.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) == 0 {
		return msgs
	}
	var out []*message.Message
	for i, m := range msgs {
		if _, ok := l.keys[deliveryKey{topic: topic, uuid: m.UUID}]; ok {
			if out == nil {
				out = append(make([]*message.Message, 0, len(msgs)-1), msgs[:i]...)
			}
			continue
		}
		if out != nil {
			out = append(out, m)
		}
	}
	if out == nil {
		return msgs
	}
	return out
}

// batchCalls collects the outcome of the Publish calls of one batch
// (publishTogether): the topics that succeeded before the batch was given
// up are remembered as late deliveries when it is, and so are the ones
// that succeed after.
type batchCalls struct {
	late *lateDeliveries

	mu      sync.Mutex
	givenUp bool
	// succeeded are the messages the destination took, by topic (one
	// Publish per topic), until the batch is given up.
	succeeded map[string][]*message.Message
}

// succeed records that the destination took msgs on topic.
func (b *batchCalls) succeed(topic string, msgs []*message.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.givenUp {
		b.late.add(topic, msgs)
		return
	}
	if b.succeeded == nil {
		b.succeeded = map[string][]*message.Message{}
	}
	b.succeeded[topic] = msgs
}

// giveUp records that the batch failed: what the destination took of it
// will be read again.
func (b *batchCalls) giveUp() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.givenUp = true
	for topic, msgs := range b.succeeded {
		b.late.add(topic, msgs)
	}
	b.succeeded = nil
}
