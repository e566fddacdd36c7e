package web

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres"
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

// errQueueNoAnswer: a call into an open queue did not end in time. A
// change it made may have been committed, or some of it.
var errQueueNoAnswer = errors.New("no answer")

// QueueStore is the Queue of the queue module: it opens the backend named
// by a queue URL on first use, and again after a failed open, so that the
// console can start before the services have created the queue. It never
// creates a SQLite queue file itself.
type QueueStore struct {
	url string
	// open opens the backend; a field so that tests can make it slow.
	open func(ctx context.Context) (backend.Backend, error)

	// lock is held to open or close the backend. It is a channel, not a
	// mutex, so that a request waiting behind a slow open gives up when its
	// context ends instead of queueing behind it.
	lock   chan struct{}
	b      backend.Backend
	closed bool
}

// NewQueueStore returns a store for the queue at url (sqlite://PATH or
// postgres://…); nothing is opened yet.
func NewQueueStore(url string) *QueueStore {
	s := &QueueStore{url: url, lock: make(chan struct{}, 1)}
	s.open = func(ctx context.Context) (backend.Backend, error) {
		// MustExist on both: the console reads the services' queue and
		// never creates or migrates it (nor, on PostgreSQL, takes an
		// owner lock or runs the clean-up of acked messages).
		return queue.OpenBackend(ctx, queue.Config{URL: s.url,
			SQLite: sqlite.Config{MustExist: true}, Postgres: postgres.Config{MustExist: true}})
	}
	return s
}

// CheckQueueURL reports a queue URL that no store could ever open: the
// queue module's own check (queue.ValidateURL: the scheme, a SQLite URL's
// path and parameters, a PostgreSQL URL's syntax), which opens no file and
// dials no server, so the console still starts before the queue exists or
// while PostgreSQL is down; and memory://, a queue inside this process that
// no service shares. The error quotes the URL with its password masked.
func CheckQueueURL(raw string) error {
	if err := queue.ValidateURL(raw); err != nil {
		return err // the queue module masks the password itself
	}
	if queue.IsInProcess(raw) {
		return fmt.Errorf("queue URL %q: a queue inside the console alone, not the services' (want sqlite://PATH or postgres://USER@HOST/DB)", RedactURL(raw))
	}
	return nil
}

// redactIn returns msg with the URL raw in it redacted (RedactURL), when
// raw has a password to mask or does not parse; otherwise unchanged, as
// RedactURL also normalises a URL other than SQLite's (url.URL.String).
func redactIn(msg, raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if _, ok := u.User.Password(); !ok && !u.Query().Has("password") {
			return msg
		}
	}
	return strings.ReplaceAll(msg, raw, RedactURL(raw))
}

// URL is the queue URL, password included; RedactURL it to show it.
func (s *QueueStore) URL() string { return s.url }

func (s *QueueStore) backend(ctx context.Context) (backend.Backend, error) {
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: still opening: %v", ErrQueueUnavailable, context.Cause(ctx))
	}
	defer func() { <-s.lock }()
	if s.closed {
		return nil, fmt.Errorf("%w: closed", ErrQueueUnavailable)
	}
	if s.b != nil {
		return s.b, nil
	}
	b, err := s.open(ctx)
	if err != nil {
		// The queue module's errors may quote the URL; the text is shown on
		// the Queue page.
		return nil, fmt.Errorf("%w: %s", ErrQueueUnavailable, redactIn(err.Error(), s.url))
	}
	s.b = b
	return b, nil
}

// Close closes the backend if it was opened; the store opens none after.
// It waits for an open under way, which its caller's context bounds.
func (s *QueueStore) Close() error {
	s.lock <- struct{}{}
	defer func() { <-s.lock }()
	s.closed = true
	if s.b == nil {
		return nil
	}
	err := s.b.Close()
	s.b = nil
	return err
}

// RedactURL returns raw as pages and logs show it (queue.ShownURL): a
// SQLite queue URL exactly as given, since the queue module takes its path
// undecoded and an escaped form would name another file (one that can be
// pasted into queuectl --queue-url); any other URL with its password
// masked, in the user information and in a password= query parameter
// (PostgreSQL takes one); of a URL that does not parse, only the scheme.
func RedactURL(raw string) string {
	return queue.ShownURL(raw)
}

// timeoutQueue bounds every call to a Queue, as every call to a service is
// bounded: a queue that does not answer in time is unavailable.
type timeoutQueue struct {
	q Queue
	d time.Duration
	// bulk bounds replaying or purging every dead letter.
	bulk time.Duration
}

// bounded runs call with a context ending after d; a call cut short by
// that (not by the caller giving up) reports the queue unavailable.
func bounded[T any](ctx context.Context, d time.Duration, call func(context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := call(cctx)
	switch {
	case err == nil || cctx.Err() == nil || errors.Is(ctx.Err(), context.Canceled): // the caller gave up
	case errors.Is(err, ErrQueueUnavailable): // still opening: nothing was done
		err = fmt.Errorf("%w: no answer within %s", ErrQueueUnavailable, d)
	default:
		err = fmt.Errorf("%w: %w within %s", ErrQueueUnavailable, errQueueNoAnswer, d)
	}
	return v, err
}

func (t timeoutQueue) Stats(ctx context.Context) ([]backend.TopicStats, error) {
	return bounded(ctx, t.d, t.q.Stats)
}

func (t timeoutQueue) DeadLetters(ctx context.Context, f backend.DeadLetterFilter) ([]backend.DeadLetter, error) {
	return bounded(ctx, t.d, func(ctx context.Context) ([]backend.DeadLetter, error) { return t.q.DeadLetters(ctx, f) })
}

func (t timeoutQueue) DeadLetter(ctx context.Context, id int64) (backend.DeadLetter, error) {
	return bounded(ctx, t.d, func(ctx context.Context) (backend.DeadLetter, error) { return t.q.DeadLetter(ctx, id) })
}

func (t timeoutQueue) Replay(ctx context.Context, id int64) error {
	_, err := bounded(ctx, t.d, func(ctx context.Context) (struct{}, error) { return struct{}{}, t.q.Replay(ctx, id) })
	return err
}

// bulkQueueTimeout bounds replaying or purging every dead letter: work
// proportional to the queue's dead letters, which the per-call upstream
// timeout (seconds) would cut short on a large dead-letter queue. It is
// what the write timeout leaves after one upstream timeout for the page
// shown next (25 s at the default 3 s), so the answer still arrives.
func bulkQueueTimeout(upstream time.Duration) time.Duration {
	return max(upstream, writeTimeout-replyMargin-upstream)
}

func (t timeoutQueue) ReplayAll(ctx context.Context, f backend.DeadLetterFilter) (int, error) {
	return bounded(ctx, t.bulk, func(ctx context.Context) (int, error) { return t.q.ReplayAll(ctx, f) })
}

func (t timeoutQueue) Purge(ctx context.Context, f backend.DeadLetterFilter) (int, error) {
	return bounded(ctx, t.bulk, func(ctx context.Context) (int, error) { return t.q.Purge(ctx, f) })
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
