// Package memory is a queue backend on Watermill's in-process GoChannel:
// no persistence and no processes, only the upper bound of what the
// services can do when the queue costs nothing. It exists for benchmarks
// and tests that run every service in one process.
//
// Caveats, all inherited from GoChannel: a message published while no
// subscriber of its topic exists is dropped; nothing survives the process;
// each Subscribe call receives every message of its topic (one subscriber
// per consumer group and topic gives group semantics, which is what the
// queue's Router does).
package memory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/orderflow/orderflow/queue/backend"
)

// Backend is an in-memory queue. It implements backend.Backend.
type Backend struct {
	pubsub *gochannel.GoChannel
	pub    *publisher

	mu       sync.Mutex
	topics   map[string]bool
	attempts map[attemptKey]*attemptState
	dead     []backend.DeadLetter
	nextID   int64
	closed   bool
}

type attemptKey struct{ group, topic, uuid string }

type attemptState struct {
	n           int
	firstFailed time.Time
	lastError   string
	delay       time.Duration
}

var _ backend.Backend = (*Backend)(nil)

// New creates an empty in-memory queue.
func New(logger watermill.LoggerAdapter) *Backend {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	b := &Backend{
		pubsub:   gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 256}, logger),
		topics:   map[string]bool{},
		attempts: map[attemptKey]*attemptState{},
	}
	b.pub = &publisher{b: b}
	return b
}

// Name reports "memory".
func (b *Backend) Name() string { return "memory" }

// Publisher returns the shared publisher.
func (b *Backend) Publisher() message.Publisher { return b.pub }

// Close closes the GoChannel; subscriptions end.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	return b.pubsub.Close()
}

type publisher struct{ b *Backend }

func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	if err := backend.ValidateTopic(topic); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	for _, m := range msgs {
		if err := backend.ValidateUUID(m.UUID); err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
	}
	p.b.mu.Lock()
	p.b.topics[topic] = true
	p.b.mu.Unlock()
	return p.b.pubsub.Publish(topic, msgs...)
}

func (p *publisher) Close() error { return nil }

// Subscriber returns a subscriber that stamps the attempt count and honours
// retry delays and replay targets like the persistent backends do.
func (b *Backend) Subscriber(cfg backend.SubscriberConfig) (message.Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("memory subscriber: %w", err)
	}
	return &subscriber{b: b, group: cfg.ConsumerGroup, concurrency: max(cfg.Concurrency, 1), closing: make(chan struct{})}, nil
}

type subscriber struct {
	b     *Backend
	group string
	// concurrency is how many messages one Subscribe call hands out
	// before one of them is settled (GoChannel itself hands out as many as
	// its buffer holds).
	concurrency int
	closing     chan struct{}
	closeOnce   sync.Once
	wg          sync.WaitGroup
	// closeMu orders a Subscribe's wg.Add before Close's wg.Wait, or after
	// closing is closed (Subscribe then fails).
	closeMu sync.Mutex
}

// Subscribe forwards the topic's messages until ctx ends or the subscriber
// closes. When ctx ends it hands out nothing more and closes the channel,
// while the messages already handed out keep a live context and have their
// ack or nack recorded until the handler settles them or Close gives up on
// them (cancelling their contexts), like the persistent backends' graceful
// stop. Unlike theirs, what is not settled is lost: a message not yet
// handed out when ctx ends, one given up at Close, and one nacked during
// the stop are dropped with the GoChannel subscription, not delivered again
// (memory:// keeps nothing; it is for tests and benchmarks in one process).
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := backend.ValidateTopic(topic); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	s.b.mu.Lock()
	s.b.topics[topic] = true
	s.b.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	in, err := s.b.pubsub.Subscribe(ctx, topic)
	if err != nil {
		cancel()
		return nil, err
	}
	out := make(chan *message.Message)
	slots := make(chan struct{}, s.concurrency)
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	select {
	case <-s.closing:
		cancel()
		return nil, fmt.Errorf("subscribe to %s: subscriber closed", topic)
	default:
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer cancel()
		for {
			select {
			case <-s.closing:
				return
			case <-ctx.Done():
				return
			case msg, ok := <-in:
				// GoChannel may still have buffered messages after ctx
				// ended: claim none of them.
				if !ok || s.stopped(ctx) {
					return
				}
				if !s.deliver(ctx, topic, msg, out, slots) {
					return
				}
			}
		}
	}()
	return out, nil
}

// stopped reports whether Subscribe's context ended or the subscriber is
// closing: nothing more is to be handed out.
func (s *subscriber) stopped(ctx context.Context) bool {
	select {
	case <-s.closing:
		return true
	default:
		return ctx.Err() != nil
	}
}

// deliver stamps and forwards one delivery once one of slots is free,
// then records its outcome once the handler acks or nacks and frees the
// slot. It returns false, having handed out nothing, when ctx ends or the
// subscriber closes first.
func (s *subscriber) deliver(ctx context.Context, topic string, msg *message.Message, out chan<- *message.Message, slots chan struct{}) bool {
	if target := msg.Metadata.Get(backend.MetadataReplayForGroup); target != "" && target != s.group {
		msg.Ack()
		return true
	}
	key := attemptKey{s.group, topic, msg.UUID}
	s.b.mu.Lock()
	st := s.b.attempts[key]
	if st == nil {
		st = &attemptState{}
		s.b.attempts[key] = st
	}
	st.n++
	n, wait, first, lastErr := st.n, st.delay, st.firstFailed, st.lastError
	s.b.mu.Unlock()
	handedOut, haveSlot := false, false
	defer func() {
		if handedOut {
			return
		}
		if haveSlot {
			<-slots
		}
		// Not handed out: this attempt was not made.
		s.b.mu.Lock()
		st.n--
		if st.n <= 0 && s.b.attempts[key] == st {
			delete(s.b.attempts, key)
		}
		s.b.mu.Unlock()
	}()
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
			return false
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
	// At most concurrency messages handed out and not yet settled.
	select {
	case slots <- struct{}{}:
		haveSlot = true
	case <-s.closing:
		return false
	case <-ctx.Done():
		return false
	}
	if s.stopped(ctx) { // the slot may have come free as the stop began
		return false
	}
	// Hand the handler a copy and settle the original only after the
	// outcome is recorded: GoChannel redelivers a nacked message at once,
	// and the redelivery must see the new attempt state.
	fwd := msg.Copy()
	// GoChannel derives msg's context from ctx; the handler's must outlive
	// it (the graceful stop) and end with the outcome or with Close.
	fwdCtx, cancelFwd := context.WithCancel(context.WithoutCancel(msg.Context()))
	fwd.SetContext(fwdCtx)
	fwd.Metadata.Set(backend.MetadataAttempt, strconv.Itoa(n))
	// Nothing here outlives its process, so no delivery is ever
	// abandoned; a publisher's key of that name does not count.
	delete(fwd.Metadata, backend.MetadataAbandoned)
	if !first.IsZero() {
		fwd.Metadata.Set(backend.MetadataFirstFailedAt, first.Format(time.RFC3339Nano))
		fwd.Metadata.Set(backend.MetadataLastError, lastErr)
	}
	select {
	case out <- fwd:
		handedOut = true
	case <-s.closing:
		cancelFwd()
		return false
	case <-ctx.Done():
		cancelFwd()
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancelFwd()
		defer func() { <-slots }()
		select {
		case <-fwd.Acked():
			s.acked(key, msg)
		case <-fwd.Nacked():
			s.nacked(st, fwd, msg)
		case <-s.closing:
			// Close gives up on a handler still running (its context is
			// cancelled on return); an outcome already given still counts.
			select {
			case <-fwd.Acked():
				s.acked(key, msg)
			case <-fwd.Nacked():
				s.nacked(st, fwd, msg)
			default:
			}
		}
	}()
	return true
}

func (s *subscriber) acked(key attemptKey, msg *message.Message) {
	s.b.mu.Lock()
	delete(s.b.attempts, key)
	s.b.mu.Unlock()
	msg.Ack()
}

func (s *subscriber) nacked(st *attemptState, fwd, msg *message.Message) {
	d, _ := time.ParseDuration(fwd.Metadata.Get(delay.DelayedForKey))
	s.b.mu.Lock()
	if st.firstFailed.IsZero() {
		st.firstFailed = time.Now().UTC()
	}
	st.lastError = fwd.Metadata.Get(backend.MetadataLastError)
	st.delay = d
	s.b.mu.Unlock()
	msg.Nack()
}

func (s *subscriber) Close() error {
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		close(s.closing)
		s.closeMu.Unlock()
	})
	s.wg.Wait()
	return nil
}

// DeadLetters returns the in-memory dead-letter list.
func (b *Backend) DeadLetters() backend.DeadLetterStore { return deadLetters{b} }

type deadLetters struct{ b *Backend }

func (d deadLetters) Put(_ context.Context, dl backend.DeadLetter) error {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	if dl.DeadAt.IsZero() {
		dl.DeadAt = time.Now().UTC()
	}
	for i, x := range d.b.dead {
		if x.ConsumerGroup == dl.ConsumerGroup && x.MessageUUID == dl.MessageUUID {
			// Stored once; refreshed, with DeadAt moved forward.
			x.Attempts, x.LastError, x.Metadata = dl.Attempts, dl.LastError, dl.Metadata
			if x.FirstFailedAt.IsZero() || (!dl.FirstFailedAt.IsZero() && dl.FirstFailedAt.Before(x.FirstFailedAt)) {
				x.FirstFailedAt = dl.FirstFailedAt
			}
			if dl.LastFailedAt.After(x.LastFailedAt) {
				x.LastFailedAt = dl.LastFailedAt
			}
			x.DeadAt = later(dl.DeadAt, x.DeadAt.Add(time.Millisecond))
			d.b.dead[i] = x
			return nil
		}
	}
	d.b.nextID++
	dl.ID = d.b.nextID
	d.b.dead = append(d.b.dead, dl)
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func matches(dl backend.DeadLetter, f backend.DeadLetterFilter) bool {
	return (f.Topic == "" || dl.Topic == f.Topic) && (f.ConsumerGroup == "" || dl.ConsumerGroup == f.ConsumerGroup) &&
		dl.ID > f.AfterID && (f.DeadBefore.IsZero() || dl.DeadAt.Before(f.DeadBefore))
}

func (d deadLetters) List(_ context.Context, f backend.DeadLetterFilter) ([]backend.DeadLetter, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	dead := d.b.dead // in ID order
	if f.Newest {
		dead = slices.Clone(dead)
		slices.Reverse(dead)
	}
	var out []backend.DeadLetter
	for _, dl := range dead {
		if matches(dl, f) && len(out) < limit {
			dl.PayloadSize = len(dl.Payload)
			dl.Payload = backend.PreviewPayload(dl.Payload)
			out = append(out, dl)
		}
	}
	return out, nil
}

func (d deadLetters) Get(_ context.Context, id int64) (backend.DeadLetter, error) {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	for _, dl := range d.b.dead {
		if dl.ID == id {
			dl.PayloadSize = len(dl.Payload)
			return dl, nil
		}
	}
	return backend.DeadLetter{}, fmt.Errorf("dead letter %d: %w", id, backend.ErrNotFound)
}

func (d deadLetters) Delete(_ context.Context, id int64) error {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	for i, dl := range d.b.dead {
		if dl.ID == id {
			d.b.dead = append(d.b.dead[:i], d.b.dead[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("dead letter %d: %w", id, backend.ErrNotFound)
}

func (d deadLetters) DeleteIfUnchanged(_ context.Context, id int64, deadAt time.Time) (bool, error) {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	for i, dl := range d.b.dead {
		if dl.ID == id && dl.DeadAt.Equal(deadAt) {
			d.b.dead = append(d.b.dead[:i], d.b.dead[i+1:]...)
			return true, nil
		}
	}
	return false, nil
}

func (d deadLetters) Purge(_ context.Context, f backend.DeadLetterFilter) (int, error) {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	kept := d.b.dead[:0]
	n := 0
	for _, dl := range d.b.dead {
		if matches(dl, f) {
			n++
			continue
		}
		kept = append(kept, dl)
	}
	d.b.dead = kept
	return n, nil
}

// Inspector reports topics and dead letters; GoChannel keeps no depth.
func (b *Backend) Inspector() backend.Inspector { return inspector{b} }

type inspector struct{ b *Backend }

func (i inspector) Topics(context.Context) ([]string, error) {
	i.b.mu.Lock()
	defer i.b.mu.Unlock()
	out := make([]string, 0, len(i.b.topics))
	for t := range i.b.topics {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

func (i inspector) Stats(ctx context.Context) ([]backend.TopicStats, error) {
	topics, _ := i.Topics(ctx)
	i.b.mu.Lock()
	defer i.b.mu.Unlock()
	out := make([]backend.TopicStats, len(topics))
	for n, t := range topics {
		out[n] = backend.TopicStats{Topic: t, Groups: []backend.GroupStats{}}
		for _, dl := range i.b.dead {
			if dl.Topic == t {
				out[n].DeadLetters++
			}
		}
	}
	return out, nil
}
