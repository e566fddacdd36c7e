package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"go.opentelemetry.io/otel/metric"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/internal/handlerpool"
	"github.com/orderflow/orderflow/queue/retry"
	"github.com/orderflow/orderflow/queue/tracing"
)

// RouterConfig configures the handlers of one consumer group.
type RouterConfig struct {
	// ConsumerGroup names the group; each service uses its own name, so
	// every service gets every message of the topics it handles.
	ConsumerGroup string
	// Concurrency is how many messages of one topic are handled at once
	// by this process. Default 1 (in order). The SQLite and memory://
	// backends honour it. On PostgreSQL, values above 1 are accepted but
	// change nothing: a consumer group's poll holds the group's advisory
	// lock on the topic while it hands its batch out one message at a
	// time, so the group handles one message of a topic at a time in the
	// whole deployment, and more processes give fail-over, not
	// parallelism (see package postgres).
	Concurrency int
	// Retry tunes retries and dead-lettering; ConsumerGroup and
	// DeadLetters are filled in.
	Retry retry.Config
	// CloseTimeout bounds the graceful stop that begins when Run's
	// context ends: no message is handed out any more, while handlers
	// already running keep a live context and have their ack or nack
	// recorded (an acked message is not delivered again) until they
	// finish or CloseTimeout passes. Then the contexts of those still
	// running are cancelled and their messages released, to be delivered
	// again later with this attempt counted (on PostgreSQL, a handler's
	// context also ends when postgres.Config.AckDeadline passes, as it
	// always does; on memory://, which keeps nothing, they are dropped
	// instead of delivered again). Default 30s.
	CloseTimeout time.Duration
	// OnHandle, when set, is called by Handle with the topic of each
	// handler registered: the place to start the caller's own per-topic
	// counters (those Retry.OnRetry and Retry.OnDeadLetter add to) at 0,
	// as Handle starts the queue's.
	OnHandle func(topic string)
}

func (c *RouterConfig) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 30 * time.Second
	}
}

// Validate reports an unusable config. Zero values are valid: they take
// the defaults. Retry is checked by NewRouter, once ConsumerGroup and
// DeadLetters are filled in.
func (c RouterConfig) Validate() error {
	var errs []error
	if c.ConsumerGroup == "" {
		errs = append(errs, errors.New("consumer group is required"))
	}
	if c.Concurrency < 0 {
		errs = append(errs, errors.New("concurrency must not be negative"))
	}
	return errors.Join(errs...)
}

// Router runs handlers for one consumer group. Every handler is wrapped,
// outermost first, in: panic recovery (a last resort for the middleware
// itself), a hand-over to a long-lived goroutine whose stack has grown
// already (Watermill starts a goroutine per message, and growing its stack
// cost 5 % of the services' CPU), a consumer span (child of the producer's
// span), retries with dead-lettering, metrics (inside the retries, so that
// each run counts with its own outcome), and panic recovery again: a
// handler that panics has failed an attempt like one that returns an
// error, so it is retried with backoff and dead-lettered after
// MaxAttempts, not redelivered at once forever.
type Router struct {
	q      *Queue
	cfg    RouterConfig
	sub    message.Subscriber
	router *message.Router
	pool   *handlerpool.Pool

	// running counts the handlers running (outermost middleware).
	running atomic.Int64

	mu       sync.Mutex
	ran      bool // Run has started
	released bool // the subscriber and the pool are closed
}

// NewRouter creates a router for cfg.ConsumerGroup.
func (q *Queue) NewRouter(cfg RouterConfig) (*Router, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new router: %w", err)
	}
	rc := cfg.Retry
	rc.ConsumerGroup = cfg.ConsumerGroup
	rc.DeadLetters = q.backend.DeadLetters()
	if rc.Logger == nil {
		rc.Logger = q.logger
	}
	if ins := q.metrics; ins != nil {
		group := cfg.ConsumerGroup
		retried, dead := rc.OnRetry, rc.OnDeadLetter
		rc.OnRetry = func(topic string) {
			ins.retried.Add(context.Background(), 1, metric.WithAttributes(attrTopic.String(topic), attrGroup.String(group)))
			if retried != nil {
				retried(topic)
			}
		}
		rc.OnDeadLetter = func(topic string) {
			ins.deadLettered.Add(context.Background(), 1, metric.WithAttributes(attrTopic.String(topic), attrGroup.String(group)))
			if dead != nil {
				dead(topic)
			}
		}
	}
	retries, err := retry.NewMiddleware(rc)
	if err != nil {
		return nil, fmt.Errorf("new router: %w", err)
	}
	// The retry middleware logs each failure it reports to the router:
	// the router's own record of it ("Handler returned error", at error
	// level) is written at debug level.
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout},
		closeTimeoutLogger{retry.RouterLogger(q.logger)})
	if err != nil {
		return nil, fmt.Errorf("new router: %w", err)
	}
	pool, err := handlerpool.New(0)
	if err != nil {
		return nil, fmt.Errorf("new router: %w", err)
	}
	// Last: nothing after it fails, so the subscriber is never left open.
	sub, err := q.backend.Subscriber(backend.SubscriberConfig{
		ConsumerGroup: cfg.ConsumerGroup, Concurrency: cfg.Concurrency,
		// Dead letters the backend writes itself (PostgreSQL's unreadable
		// rows) count as the retry middleware's do.
		OnDeadLetter: rc.OnDeadLetter,
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("new router: %w", err)
	}
	rt := &Router{q: q, cfg: cfg, sub: sub, router: r, pool: pool}
	r.AddMiddleware(rt.count, middleware.Recoverer, pool.Middleware, tracing.Middleware(q.tracingConfig(cfg.ConsumerGroup)))
	r.AddMiddleware(retries)
	if ins := q.metrics; ins != nil {
		// Inside the retry middleware, so that every handler run counts
		// with its own outcome: a run that failed is an error whether it
		// was retried or dead-lettered (which the retry middleware acks).
		r.AddMiddleware(ins.middleware(cfg.ConsumerGroup))
	}
	r.AddMiddleware(middleware.Recoverer)
	return rt, nil
}

// count is the outermost middleware: it counts the handlers running.
func (r *Router) count(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		r.running.Add(1)
		defer r.running.Add(-1)
		return h(msg)
	}
}

// Handle registers h for topic. Register every handler before Run. The
// queue's counters of topic and the router's group (MetricProcessed,
// MetricRetried, MetricDeadLettered, MetricRanAlone) start at 0 here, and
// RouterConfig.OnHandle is called.
func (r *Router) Handle(name, topic string, h message.NoPublishHandlerFunc) {
	r.router.AddConsumerHandler(name, topic, routerSubscriber{r.sub}, h)
	if ins := r.q.metrics; ins != nil {
		ins.start(topic, r.cfg.ConsumerGroup)
	}
	if r.cfg.OnHandle != nil {
		r.cfg.OnHandle(topic)
	}
}

// closeTimeoutLogger is the logger of Watermill's router. The router's
// record of a graceful stop that ran out of time ("Cannot close router:
// router close timeout", at error level, written after Run has returned)
// is written at debug level: a stop bounded by CloseTimeout that cuts a
// handler short is its expected outcome, not a failure, and Run says so
// itself, with a warning, before it returns.
type closeTimeoutLogger struct{ watermill.LoggerAdapter }

func (l closeTimeoutLogger) Error(msg string, err error, fields watermill.LogFields) {
	if msg == "Cannot close router" && err != nil && err.Error() == "router close timeout" {
		l.Debug(msg, fields.Add(watermill.LogFields{"error": err.Error()}))
		return
	}
	l.LoggerAdapter.Error(msg, err, fields)
}

func (l closeTimeoutLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return closeTimeoutLogger{l.LoggerAdapter.With(fields)}
}

// routerSubscriber is the subscriber as Watermill's router sees it: one it
// cannot close. The router closes its handlers' subscribers as soon as it
// begins to close, before it waits for the running handlers; closing ours
// then would cancel those handlers and release their messages. Ending the
// Subscribe context (which the router does at the same moment) stops the
// hand-out and leaves the running handlers alone; Run closes the subscriber
// once the router has waited for them.
type routerSubscriber struct{ message.Subscriber }

func (routerSubscriber) Close() error { return nil }

// AddMiddleware adds middleware inside the standard ones (it sees the
// message after tracing and retries have wrapped the handler; a panic in it
// is recovered and retried like the handler's).
func (r *Router) AddMiddleware(m ...message.HandlerMiddleware) { r.router.AddMiddleware(m...) }

// Running is closed once every handler is subscribed. It is receive-only:
// the router closes it.
func (r *Router) Running() <-chan struct{} { return r.router.Running() }

// Run handles messages until ctx ends, then stops gracefully: it hands out
// no more messages, waits for running handlers up to CloseTimeout, recording
// their acks and nacks, and closes the subscriber, which cancels the
// handlers still running and releases their messages (see CloseTimeout).
func (r *Router) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.released {
		r.mu.Unlock()
		return errors.New("router: closed")
	}
	r.ran = true
	r.mu.Unlock()
	err := r.router.Run(ctx)
	if n := r.running.Load(); n > 0 {
		// What a graceful stop bounded by CloseTimeout allows: no error.
		retry.Warn(r.q.logger, "Graceful stop: handlers still running after the router's close timeout are cancelled; their messages are delivered again (the attempt counts)",
			nil, watermill.LogFields{"consumer_group": r.cfg.ConsumerGroup, "running": n, "close_timeout": r.cfg.CloseTimeout.String()})
	}
	if cerr := r.release(true); err == nil {
		err = cerr
	}
	return err
}

// Close releases a Router that never ran (its subscriber, which may have
// started work of its own, and its handler pool), for a caller that gives
// up before Run: a service whose start-up fails further on. After Run has
// started, Run releases them when it returns, and Close does nothing.
func (r *Router) Close() error { return r.release(false) }

// release closes the subscriber and the handler pool, once: for Run
// (byRun), or for Close when Run never started. Which one does it is
// decided under the lock that Run's start takes, so that Run cannot start
// on a router Close released.
func (r *Router) release(byRun bool) error {
	r.mu.Lock()
	if r.released || (!byRun && r.ran) {
		r.mu.Unlock()
		return nil
	}
	r.released = true
	r.mu.Unlock()
	err := r.sub.Close()
	// Ends the pooled goroutines that wait for work. A handler that
	// ignored the cancellation of the subscriber's close keeps its
	// goroutine until it returns, past Run, as Watermill's router leaves
	// it.
	r.pool.Close()
	return err
}
