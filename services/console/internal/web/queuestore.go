package web

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// Queue is what the Queue page needs of the shared queue: statistics and
// the dead-letter store. Implementations are safe for concurrent use; an
// error wrapping ErrQueueUnavailable means the queue cannot be reached.
type Queue interface {
	Stats(ctx context.Context) ([]backend.TopicStats, error)
	DeadLetters(ctx context.Context, f backend.DeadLetterFilter) ([]backend.DeadLetter, error)
	DeadLetter(ctx context.Context, id int64) (backend.DeadLetter, error)
	// Replay puts one dead letter back on its topic for its group.
	Replay(ctx context.Context, id int64) error
	// ReplayAll replays what f selects and says how many.
	ReplayAll(ctx context.Context, f backend.DeadLetterFilter) (int, error)
	// Purge deletes what f selects and says how many.
	Purge(ctx context.Context, f backend.DeadLetterFilter) (int, error)
}

// ErrQueueUnavailable: the queue could not be opened.
var ErrQueueUnavailable = errors.New("queue unavailable")

// QueueStore is the Queue of the queue module: it opens the backend named
// by a queue URL on first use, and again after a failed open, so that the
// console can start before the services have created the queue. It never
// creates a SQLite queue file itself.
type QueueStore struct {
	url string

	mu sync.Mutex
	b  backend.Backend
}

// NewQueueStore returns a store for the queue at url (sqlite://PATH or
// postgres://…); nothing is opened yet.
func NewQueueStore(url string) *QueueStore { return &QueueStore{url: url} }

// URL is the queue URL.
func (s *QueueStore) URL() string { return s.url }

func (s *QueueStore) backend(ctx context.Context) (backend.Backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b != nil {
		return s.b, nil
	}
	b, err := queue.OpenBackend(ctx, queue.Config{URL: s.url, SQLite: sqlite.Config{MustExist: true}})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrQueueUnavailable, err)
	}
	s.b = b
	return b, nil
}

// Close closes the backend if it was opened.
func (s *QueueStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b == nil {
		return nil
	}
	err := s.b.Close()
	s.b = nil
	return err
}

// Stats reports every topic with its consumer groups.
func (s *QueueStore) Stats(ctx context.Context) ([]backend.TopicStats, error) {
	b, err := s.backend(ctx)
	if err != nil {
		return nil, err
	}
	return b.Inspector().Stats(ctx)
}

// DeadLetters lists dead letters.
func (s *QueueStore) DeadLetters(ctx context.Context, f backend.DeadLetterFilter) ([]backend.DeadLetter, error) {
	b, err := s.backend(ctx)
	if err != nil {
		return nil, err
	}
	return b.DeadLetters().List(ctx, f)
}

// DeadLetter returns one dead letter.
func (s *QueueStore) DeadLetter(ctx context.Context, id int64) (backend.DeadLetter, error) {
	b, err := s.backend(ctx)
	if err != nil {
		return backend.DeadLetter{}, err
	}
	return b.DeadLetters().Get(ctx, id)
}

// Replay replays one dead letter (queue.ReplayDeadLetter).
func (s *QueueStore) Replay(ctx context.Context, id int64) error {
	b, err := s.backend(ctx)
	if err != nil {
		return err
	}
	return queue.ReplayDeadLetter(ctx, b, id)
}

// ReplayAll replays every dead letter f selects (queue.ReplayDeadLetters).
func (s *QueueStore) ReplayAll(ctx context.Context, f backend.DeadLetterFilter) (int, error) {
	b, err := s.backend(ctx)
	if err != nil {
		return 0, err
	}
	return queue.ReplayDeadLetters(ctx, b, f)
}

// Purge deletes every dead letter f selects.
func (s *QueueStore) Purge(ctx context.Context, f backend.DeadLetterFilter) (int, error) {
	b, err := s.backend(ctx)
	if err != nil {
		return 0, err
	}
	return b.DeadLetters().Purge(ctx, f)
}
