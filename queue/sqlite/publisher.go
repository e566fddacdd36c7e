package sqlite

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
)

// Publisher stores messages in the queue file. It is safe for concurrent
// use: concurrent Publish calls of a process are committed together (group
// commit), each returning once its own messages are durable.
type Publisher struct {
	b *Backend
}

// Publish stores msgs on topic, all or none, with one delivery for every
// consumer group subscribed to the topic. It returns after the commit.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if err := backend.ValidateTopic(topic); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if p.b.isClosed() {
		return fmt.Errorf("publish to %s: %w", topic, errClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	op := &publishOp{topic: topic, msgs: make([]storedMessage, len(msgs))}
	for i, m := range msgs {
		if err := backend.ValidateUUID(m.UUID); err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		meta, err := encodeMetadata(m.Metadata)
		if err != nil {
			return fmt.Errorf("publish to %s: encode metadata of %s: %w", topic, m.UUID, err)
		}
		op.msgs[i] = storedMessage{uuid: m.UUID, payload: m.Payload, metadata: meta}
	}
	p.b.mu.Lock()
	op.register = !p.b.knownTopics[topic]
	p.b.mu.Unlock()
	if err := p.b.submit(op, true); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	if op.register {
		p.b.mu.Lock()
		p.b.knownTopics[topic] = true
		p.b.mu.Unlock()
	}
	return nil
}

// Close is a no-op: the publisher lives as long as its Backend.
func (p *Publisher) Close() error { return nil }
