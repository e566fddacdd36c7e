package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
)

// publisher inserts messages through watermill-sql after making sure the
// topic's tables exist and the topic is registered.
type publisher struct {
	b     *Backend
	inner *wsql.Publisher

	mu     sync.RWMutex // held for reading by every Publish, for writing by Close
	closed bool
}

func (b *Backend) newPublisher() (*publisher, error) {
	inner, err := wsql.NewPublisher(b.db, wsql.PublisherConfig{SchemaAdapter: b.schema}, b.cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("new publisher: %w", err)
	}
	p := &publisher{b: b, inner: inner}
	if err := b.track(p, nil); err != nil {
		return nil, fmt.Errorf("new publisher: %w", err)
	}
	return p, nil
}

// Publish stores the messages of one call in one INSERT (one transaction)
// and returns once it is committed. Messages need a UUID of at most 36
// characters (backend.ValidateUUID). It is safe for concurrent use.
func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return fmt.Errorf("publish to %q: %w", topic, ErrClosed)
	}
	if err := ValidateTopic(topic); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if len(msgs) == 0 {
		return nil
	}
	for _, m := range msgs {
		if err := backend.ValidateUUID(m.UUID); err != nil {
			return fmt.Errorf("publish to %q: %w", topic, err)
		}
	}
	// A success counts from when it began: a publish that was under way
	// when the server began refusing writes must not clear that failure.
	began := time.Now()
	err := p.b.ensureTopic(context.Background(), topic)
	if err == nil {
		err = p.inner.Publish(topic, msgs...)
	}
	if err != nil {
		p.b.health.FailedIf(time.Now(), err, writeRefused)
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	p.b.health.Succeeded(began)
	return nil
}

// Close waits for running Publish calls; later ones fail with ErrClosed.
func (p *publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.b.untrack(p, nil)
	return p.inner.Close()
}
