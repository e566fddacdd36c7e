package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/metric"

	"github.com/orderflow/orderflow/queue/internal/handlerpool"
	"github.com/orderflow/orderflow/queue/retry"
)

// MetadataForwardFailures is set on an outbox envelope (not on the message
// it carries) that was put back in the outbox because forwarding it failed:
// how many times that happened.
const MetadataForwardFailures = "outbox_forward_failures"

// MetricPending is the gauge of the messages committed to the outbox and
// not yet forwarded (Forwarder.Pending), reported when
// ForwarderConfig.MeterProvider is set: the part of a service's lag that
// the queue's own depth does not show.
const MetricPending = "queue.outbox.pending"

// DefaultAckDeadline is ForwarderConfig.AckDeadline's default.
const DefaultAckDeadline = 5 * time.Second

// DefaultConsumerGroup is the consumer group under which the Forwarder
// records its offset when none is configured.
const DefaultConsumerGroup = "forwarder"

// ForwarderConfig configures a Forwarder. Zero values take the defaults.
type ForwarderConfig struct {
	// Outbox, when set, wakes the forwarder whenever it stores a message,
	// so the forwarder can poll an idle outbox rarely and still forward a
	// commit within about a millisecond. Optional: without it, only polling
	// finds new messages (for example when another process writes them).
	// One Forwarder per Outbox.
	Outbox *Outbox
	// ForwarderTopic must equal the Outbox's. Defaults to the Outbox's
	// when Outbox is set, else to DefaultForwarderTopic.
	ForwarderTopic string
	// ConsumerGroup names the forwarder's offset. Defaults to
	// DefaultConsumerGroup. Run one Forwarder per (file, topic, group).
	ConsumerGroup string
	// BatchSize is how many messages one forwarding transaction reads and
	// forwards (published together, see batch.go) while holding the file's
	// write lock. A crash mid-batch forwards the batch again. Defaults to
	// DefaultBatchSize (16).
	BatchSize int
	// MinPollInterval and PollInterval bound the wait between polls of an
	// empty outbox: it starts at MinPollInterval after a forward or a
	// wake-up and doubles up to PollInterval while the outbox stays empty.
	// An idle poll is one read-only query (no transaction, no write lock).
	// Defaults: 1ms; PollInterval 100ms with Outbox set (stores wake the
	// forwarder, so the idle poll only bounds the latency of messages
	// written by someone else), 10ms without.
	MinPollInterval time.Duration
	PollInterval    time.Duration
	// RetryInterval is the pause after a failed poll or a failed forward
	// (the destination is down). Defaults to 1s.
	RetryInterval time.Duration
	// AckDeadline bounds how long one message may take to forward before
	// its batch is committed without it (it is forwarded again later), and
	// how long the publish of a batch may take before the batch is rolled
	// back (batch.go). It bounds how long a destination that stops
	// answering holds the service's write lock at each call: no
	// forwarding transaction begins while a call hangs, up to ten ack
	// deadlines (destinationCalls), so a queue that stops answering holds
	// it once per call that hangs, not once per attempt.
	// Defaults to 5s: well past what a publish takes on a busy queue (the
	// SQLite queue's lock waits stay under ~1.5 s at saturation), and
	// short enough that the service's own writes waiting behind it finish
	// within their usual deadlines (the order API's is 10 s).
	AckDeadline time.Duration
	// CloseTimeout bounds how long Close waits for an in-flight forward.
	// Defaults to 30s.
	CloseTimeout time.Duration
	// CleanupInterval is how often forwarded messages are deleted from the
	// outbox. Negative disables the cleanup. Defaults to 1s.
	CleanupInterval time.Duration
	// CleanupBatchSize caps the rows one cleanup statement deletes, so the
	// write lock is held briefly. Defaults to 1000.
	CleanupBatchSize int
	// Middlewares decorate the forwarding handler (metrics, logging). They
	// run inside the forwarder's own failure handling: an error they
	// return puts the message back in the outbox.
	//
	// Not tracing.Middleware: the envelope it would see carries no trace
	// context, so its span would start a trace of its own, which the
	// forwarded message would then join (Watermill's forwarder gives the
	// message the handler's context). Each forwarded message keeps the
	// trace context stored with it; wrap the destination publisher in
	// tracing.NewPublisher for a publish span in that trace.
	Middlewares []message.HandlerMiddleware
	// Logger defaults to watermill.NopLogger.
	Logger watermill.LoggerAdapter
	// MeterProvider, when set, gets the MetricPending gauge (a count of
	// the outbox's unforwarded rows whenever metrics are collected) until
	// Close. A count that cannot be read within pendingCollectTimeout
	// (the database's one connection held by a long transaction) is left
	// out of that collection rather than hold it up.
	MeterProvider metric.MeterProvider
	// ReadDB, when set, is a handle on the same database file that
	// Pending (and the gauge) read through instead of the db given to
	// NewForwarder, whose connection the handlers' and the forwarder's
	// own transactions take turns on.
	ReadDB *sql.DB
}

func (c *ForwarderConfig) setDefaults() {
	if c.ForwarderTopic == "" && c.Outbox != nil {
		c.ForwarderTopic = c.Outbox.topic
	}
	if c.ForwarderTopic == "" {
		c.ForwarderTopic = DefaultForwarderTopic
	}
	if c.ConsumerGroup == "" {
		c.ConsumerGroup = DefaultConsumerGroup
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MinPollInterval == 0 {
		c.MinPollInterval = time.Millisecond
	}
	if c.PollInterval == 0 {
		c.PollInterval = 10 * time.Millisecond
		if c.Outbox != nil {
			c.PollInterval = 100 * time.Millisecond
		}
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = time.Second
	}
	if c.AckDeadline == 0 {
		c.AckDeadline = DefaultAckDeadline
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 30 * time.Second
	}
	if c.CleanupInterval == 0 {
		c.CleanupInterval = time.Second
	}
	if c.CleanupBatchSize == 0 {
		c.CleanupBatchSize = 1000
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports an unusable config.
func (c ForwarderConfig) Validate() error {
	var errs []error
	if err := validateTopic(c.ForwarderTopic); err != nil {
		errs = append(errs, err)
	}
	if c.Outbox != nil && c.Outbox.topic != c.ForwarderTopic {
		errs = append(errs, fmt.Errorf("forwarder topic %q differs from the outbox's %q", c.ForwarderTopic, c.Outbox.topic))
	}
	if c.ConsumerGroup == "" {
		errs = append(errs, errors.New("empty consumer group"))
	}
	if c.BatchSize < 1 {
		errs = append(errs, errors.New("batch size must be positive"))
	}
	if c.MinPollInterval <= 0 || c.PollInterval <= 0 || c.RetryInterval <= 0 || c.AckDeadline <= 0 || c.CloseTimeout <= 0 {
		errs = append(errs, errors.New("poll intervals, retry interval, ack deadline and close timeout must be positive"))
	}
	if c.MinPollInterval > c.PollInterval {
		errs = append(errs, errors.New("min poll interval must not exceed poll interval"))
	}
	if c.CleanupBatchSize < 1 {
		errs = append(errs, errors.New("cleanup batch size must be positive"))
	}
	return errors.Join(errs...)
}

// Forwarder relays the messages committed to an outbox to a destination
// publisher (the shared queue), in commit order, at least once.
//
// It is Watermill's components/forwarder reading the outbox with
// watermill-sql's subscriber and the SQLite adapters of this package. One
// forwarding transaction takes the file's write lock, reads up to
// BatchSize messages, publishes them to the destination together (one
// Publish per destination topic, at once, just before the offset moves:
// batch.go) and advances the offset; it commits when the batch is done, so
// business writes wait at most one batch. Before that transaction, a
// read-only probe checks there is something to forward: an idle forwarder
// polls every PollInterval (faster right after traffic) without taking the
// write lock.
//
// A failed forward does not keep the lock while retrying. A batch whose
// publish fails is rolled back whole (its offset stays) and the forwarder
// pauses for RetryInterval, then forwards message by message until a batch
// goes through: a message whose publish fails then is put back at the end
// of the outbox (in the same transaction, so nothing is lost), the rest of
// the batch follows it without being tried, and the forwarder pauses
// again. Order is therefore commit order except after a destination
// failure. Messages that are not outbox envelopes are logged and dropped
// (only Outbox writes to the table).
type Forwarder struct {
	cfg  ForwarderConfig
	db   *sql.DB
	dst  message.Publisher
	held *heldBatch
	// batchFailed tells the subscriber's backoff that the error it gets
	// is a batch rolled back by publishHeld, already logged.
	batchFailed atomic.Bool
	// publishing counts publishTogether's Publish calls in progress.
	publishing sync.WaitGroup
	// calls are the destination's Publish calls in progress (see
	// destinationCalls; probingDB, requeueOnFailure).
	calls *destinationCalls
	// late are the messages the destination took after the forwarder
	// gave up waiting for them, not to be sent again.
	late    *lateDeliveries
	schema  SchemaAdapter
	offsets OffsetsAdapter
	sub     *wsql.Subscriber
	fwd     *forwarder.Forwarder
	// pool runs the forwarding handler on goroutines that keep their
	// grown stacks (the router starts one per message).
	pool *handlerpool.Pool
	// gauge is MetricPending's registration; nil without a MeterProvider.
	gauge  metric.Registration
	cool   *cooldown
	logger watermill.LoggerAdapter

	drain       *drain
	stopPolling chan struct{} // closed by shutdown once drained
	// giveUp is closed when the context of Shutdown ends: the stop then
	// waits no longer, as at CloseTimeout.
	giveUp          chan struct{}
	giveUpOnce      sync.Once
	stopPollingOnce sync.Once
	shutdownOnce    sync.Once
	shutdownErr     error

	mu      sync.Mutex
	started bool
	closed  bool
	done    chan struct{} // closed when Run returns
}

// NewForwarder returns a Forwarder from the outbox in db to dst. db is the
// service's database handle (see the package doc for the pool); dst must
// not depend on db. The outbox tables are created on Run if missing.
// The Forwarder does not close dst.
func NewForwarder(db *sql.DB, dst message.Publisher, cfg ForwarderConfig) (*Forwarder, error) {
	if db == nil {
		return nil, errors.New("outbox forwarder: db is nil")
	}
	if dst == nil {
		return nil, errors.New("outbox forwarder: destination publisher is nil")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("outbox forwarder: invalid config: %w", err)
	}

	pool, err := handlerpool.New(0)
	if err != nil {
		return nil, fmt.Errorf("outbox forwarder: %w", err)
	}
	f := &Forwarder{
		pool:   pool,
		cfg:    cfg,
		db:     db,
		dst:    dst,
		held:   &heldBatch{},
		late:   newLateDeliveries(cfg.BatchSize),
		schema: SchemaAdapter{BatchSize: cfg.BatchSize},
		cool:   &cooldown{},
		logger: cfg.Logger.With(watermill.LogFields{"outbox_topic": cfg.ForwarderTopic}),
		done:   make(chan struct{}),

		drain:       newDrain(),
		stopPolling: make(chan struct{}),
		giveUp:      make(chan struct{}),
	}
	f.calls = newDestinationCalls(cfg.AckDeadline, f.logger)
	var wake <-chan struct{}
	if cfg.Outbox != nil {
		wake = cfg.Outbox.stored
	}

	ackDeadline := cfg.AckDeadline
	sub, err := wsql.NewSubscriber(
		&probingDB{
			DB:    db,
			probe: f.pendingQuery(`SELECT EXISTS (SELECT 1 FROM %s WHERE %s)`),
			lock: wsql.Query{
				Query: `INSERT INTO ` + f.offsets.MessagesOffsetsTable(cfg.ForwarderTopic) +
					` (consumer_group) VALUES (?) ON CONFLICT (consumer_group) DO NOTHING`,
				Args: []any{cfg.ConsumerGroup},
			},
			cool:  f.cool,
			drain: f.drain,
			held:  f.held,
			calls: f.calls,
		},
		wsql.SubscriberConfig{
			ConsumerGroup:  cfg.ConsumerGroup,
			AckDeadline:    &ackDeadline,
			PollInterval:   cfg.PollInterval,
			ResendInterval: cfg.RetryInterval,
			RetryInterval:  cfg.RetryInterval,
			BackoffManager: &backoff{
				minPoll: cfg.MinPollInterval, maxPoll: cfg.PollInterval, retry: cfg.RetryInterval,
				nextPoll: cfg.MinPollInterval, cool: f.cool, drain: f.drain, wake: wake, stop: f.stopPolling,
				batchFailed: &f.batchFailed,
			},
			SchemaAdapter:    f.schema,
			OffsetsAdapter:   forwarderOffsets{OffsetsAdapter: f.offsets, f: f},
			InitializeSchema: true,
		},
		cfg.Logger,
	)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("outbox forwarder: new subscriber: %w", err)
	}
	f.sub = sub

	fwd, err := forwarder.NewForwarder(sub, holdingPublisher{dst: dst, held: f.held, calls: f.calls, late: f.late}, cfg.Logger, forwarder.Config{
		ForwarderTopic:      cfg.ForwarderTopic,
		Middlewares:         append([]message.HandlerMiddleware{f.pool.Middleware, f.requeueOnFailure}, cfg.Middlewares...),
		CloseTimeout:        cfg.CloseTimeout,
		AckWhenCannotUnwrap: true,
	})
	if err != nil {
		pool.Close()
		return nil, errors.Join(fmt.Errorf("outbox forwarder: %w", err), sub.Close())
	}
	f.fwd = fwd
	if cfg.MeterProvider != nil {
		if f.gauge, err = f.registerPending(cfg.MeterProvider); err != nil {
			pool.Close()
			return nil, errors.Join(fmt.Errorf("outbox forwarder: pending gauge: %w", err), sub.Close())
		}
	}
	return f, nil
}

// pendingCollectTimeout bounds the gauge's count: the Prometheus
// exporter collects with a context that never ends.
const pendingCollectTimeout = time.Second

// registerPending reports Pending as MetricPending whenever metrics are
// collected.
func (f *Forwarder) registerPending(mp metric.MeterProvider) (metric.Registration, error) {
	m := mp.Meter("github.com/orderflow/orderflow/queue/outbox")
	pending, err := m.Int64ObservableGauge(MetricPending,
		metric.WithDescription("Messages committed to the service's outbox and not yet forwarded to the queue."))
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, pendingCollectTimeout)
		defer cancel()
		n, err := f.Pending(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(pending, n)
		return nil
	}, pending)
}

// Run forwards until ctx is cancelled or Close is called, and returns once
// everything it started has stopped. A Forwarder runs once.
//
// Cancelling ctx stops the forwarder like Close, gracefully: the router
// itself runs under a context that is never cancelled, because cancelling
// watermill-sql's subscription would roll back the batch in progress (its
// transaction holds the acks of the messages already forwarded) and
// forward them again.
func (f *Forwarder) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.started || f.closed {
		f.mu.Unlock()
		return errors.New("outbox forwarder: already running or closed")
	}
	f.started = true
	f.mu.Unlock()
	defer close(f.done)

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()

	var wg sync.WaitGroup
	var shutdownErr error
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-runCtx.Done():
			return
		}
		select {
		case <-f.fwd.Running():
		case <-runCtx.Done():
			return
		}
		shutdownErr = f.shutdown()
	})
	if f.cfg.CleanupInterval > 0 {
		wg.Go(func() { f.cleanupLoop(runCtx) })
	}
	err := f.fwd.Run(runCtx)
	stop()
	wg.Wait()
	f.waitForPublishes()
	f.pool.Close()
	if err != nil {
		return errors.Join(fmt.Errorf("outbox forwarder: %w", err), shutdownErr)
	}
	return shutdownErr
}

// waitForPublishes waits, up to CloseTimeout (or the end of Shutdown's
// context), for the Publish calls of a batch that outlived its AckDeadline
// (publishTogether); a destination that hangs longer keeps its call
// running after Run returns. That is what a bounded stop allows, not a
// failure: the batch was rolled back, so its messages stay in the outbox
// and are forwarded after the restart (twice, should the call still
// succeed: the consumers' inboxes drop the second).
func (f *Forwarder) waitForPublishes() {
	done := make(chan struct{})
	go func() {
		f.publishing.Wait()
		close(done)
	}()
	began := time.Now()
	t := time.NewTimer(f.cfg.CloseTimeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	case <-f.giveUp:
	}
	retry.Warn(f.logger, "Outbox forwarder stopped with a publish to its destination still running; its messages stay in the outbox and are forwarded again after the restart", nil,
		watermill.LogFields{"waited": time.Since(began).Round(time.Millisecond).String()})
}

// Running is closed once Run has subscribed to the outbox.
func (f *Forwarder) Running() <-chan struct{} {
	return f.fwd.Running()
}

// Close stops forwarding and waits for Run to return. It first lets the
// message being forwarded finish and the batch in progress commit (up to
// CloseTimeout), so a graceful stop forwards nothing twice.
func (f *Forwarder) Close() error { return f.Shutdown(context.Background()) }

// Shutdown is Close, bounded by ctx as well as by CloseTimeout: when ctx
// ends, it waits no longer for the batch in progress (it is rolled back and
// forwarded again after the restart) or for a publish still running (see
// waitForPublishes). Nothing committed to the outbox is lost either way.
func (f *Forwarder) Shutdown(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { f.giveUpOnce.Do(func() { close(f.giveUp) }) })
	defer stop()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	started := f.started
	f.mu.Unlock()
	if f.gauge != nil {
		_ = f.gauge.Unregister()
	}

	if !started {
		// The router never ran: closing it would wait for handlers that
		// never started.
		return f.sub.Close()
	}
	// Let Run reach the running router first, or fail, so that closing
	// the router stops everything Run started.
	select {
	case <-f.fwd.Running():
	case <-f.done:
	}
	err := f.shutdown()
	<-f.done
	return err
}

// shutdown drains, then closes the router (and with it the subscriber).
func (f *Forwarder) shutdown() error {
	f.shutdownOnce.Do(func() {
		t := time.NewTimer(f.cfg.CloseTimeout)
		defer t.Stop()
		select {
		case <-f.drain.start():
		case <-t.C:
			retry.Warn(f.logger, "Outbox forwarder did not drain in time, its batch will be forwarded again", nil, nil)
		case <-f.giveUp:
			retry.Warn(f.logger, "Outbox forwarder did not drain in time, its batch will be forwarded again", nil, nil)
		}
		f.stopPollingOnce.Do(func() { close(f.stopPolling) })
		if err := f.fwd.Close(); err != nil {
			f.shutdownErr = fmt.Errorf("outbox forwarder: close: %w", err)
		}
	})
	return f.shutdownErr
}

// Pending counts the messages committed to the outbox and not yet
// forwarded (the forwarder's lag), through ForwarderConfig.ReadDB when
// set. The outbox tables must exist.
func (f *Forwarder) Pending(ctx context.Context) (int64, error) {
	q := f.pendingQuery(`SELECT COUNT(*) FROM %s WHERE %s`)
	db := f.db
	if f.cfg.ReadDB != nil {
		db = f.cfg.ReadDB
	}
	var n int64
	if err := db.QueryRowContext(ctx, q.Query, q.Args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox forwarder: count pending: %w", err)
	}
	return n, nil
}

// pendingQuery fills format with the messages table and the condition
// "not yet acked by the forwarder's group".
func (f *Forwarder) pendingQuery(format string) wsql.Query {
	next := f.offsets.NextOffsetQuery(f.cfg.ForwarderTopic, f.cfg.ConsumerGroup)
	return wsql.Query{
		Query: fmt.Sprintf(format, f.schema.MessagesTable(f.cfg.ForwarderTopic), `"offset" > (`+next.Query+`)`),
		Args:  next.Args,
	}
}

// requeueOnFailure is the outermost middleware of the forwarding handler
// but for the hand-over to a pooled goroutine (f.pool), which only moves
// the call.
// A failed (or panicking) forward acks the original envelope and stores it
// again at the end of the outbox, in the subscriber's transaction, so the
// subscriber commits and releases the write lock instead of resending
// while holding it. It then pauses the forwarder for RetryInterval; the
// rest of the batch is requeued without being tried, ahead of the failed
// envelope (stored when the batch's offset moves: publishHeld), so that
// one message refused for good does not hold up the others.
func (f *Forwarder) requeueOnFailure(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (_ []*message.Message, err error) {
		if f.drain.draining() {
			// Hold the message until the subscriber gives up on it (it
			// is being closed): its batch then commits without it, and
			// it is forwarded after the restart.
			f.drain.park()
			<-msg.Context().Done()
			return nil, errDraining
		}
		if f.cool.remaining() > 0 {
			return nil, f.requeue(msg, nil)
		}
		if f.calls.hanging(time.Now()) {
			// An earlier forward still waits on a destination that does
			// not answer (see destinationCalls): pause instead.
			f.cool.trip(f.cfg.RetryInterval)
			return nil, f.requeue(msg, nil)
		}
		defer func() {
			if r := recover(); r != nil {
				f.cool.trip(f.cfg.RetryInterval)
				f.held.markFailed()
				err = f.requeue(msg, fmt.Errorf("panic: %v", r))
			}
		}()
		if _, herr := h(msg); herr != nil {
			f.cool.trip(f.cfg.RetryInterval)
			f.held.markFailed()
			return nil, f.requeue(msg, herr)
		}
		return nil, nil
	}
}

// requeue stores msg again at the end of the outbox; cause is nil when the
// message was not tried. If that fails, the error nacks the message, which
// keeps it where it is.
func (f *Forwarder) requeue(msg *message.Message, cause error) error {
	fields := watermill.LogFields{"envelope_uuid": msg.UUID, "retry_in": f.cfg.RetryInterval}
	tx, ok := wsql.TxFromContext(msg.Context())
	if !ok {
		return errors.Join(cause, errors.New("requeue: no subscriber transaction"))
	}
	again := message.NewMessage(msg.UUID, msg.Payload)
	for k, v := range msg.Metadata {
		again.Metadata.Set(k, v)
	}
	if cause != nil {
		n, _ := strconv.Atoi(msg.Metadata.Get(MetadataForwardFailures))
		again.Metadata.Set(MetadataForwardFailures, strconv.Itoa(n+1))
	}
	if cause == nil || !f.held.putBackLast(tx, again) {
		q, err := f.schema.InsertQuery(f.cfg.ForwarderTopic, message.Messages{again})
		if err == nil {
			_, err = tx.ExecContext(msg.Context(), q.Query, q.Args...)
		}
		if err != nil {
			return errors.Join(cause, fmt.Errorf("requeue: %w", err))
		}
	}
	if cause != nil {
		f.logger.Error("Forwarding failed, message put back in the outbox", cause, fields)
	} else {
		f.logger.Debug("Forwarding paused, message put back in the outbox", fields)
	}
	return nil
}

func (f *Forwarder) cleanupLoop(ctx context.Context) {
	t := time.NewTicker(f.cfg.CleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := f.deleteForwarded(ctx); err != nil && ctx.Err() == nil {
			f.logger.Error("Cannot delete forwarded outbox messages", err, nil)
		}
	}
}

// deleteForwarded deletes, in statements of at most CleanupBatchSize rows,
// the messages every consumer group of the topic has acked. It takes the
// write lock only when there is something to delete.
func (f *Forwarder) deleteForwarded(ctx context.Context) (int64, error) {
	msgs := f.schema.MessagesTable(f.cfg.ForwarderTopic)
	acked := `(SELECT MIN(offset_acked) FROM ` + f.offsets.MessagesOffsetsTable(f.cfg.ForwarderTopic) + `)`
	var found bool
	if err := f.db.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM `+msgs+` WHERE "offset" <= `+acked+`)`).Scan(&found); err != nil {
		return 0, fmt.Errorf("probe forwarded messages: %w", err)
	}
	if !found {
		return 0, nil
	}
	del := `DELETE FROM ` + msgs + ` WHERE "offset" IN (SELECT "offset" FROM ` + msgs +
		` WHERE "offset" <= ` + acked + ` ORDER BY "offset" LIMIT ?)`
	var total int64
	for {
		res, err := f.db.ExecContext(ctx, del, f.cfg.CleanupBatchSize)
		if err != nil {
			return total, fmt.Errorf("delete forwarded messages: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("delete forwarded messages: %w", err)
		}
		total += n
		if n < int64(f.cfg.CleanupBatchSize) {
			return total, nil
		}
	}
}

// errIdle and errCoolingDown are returned by probingDB.BeginTx instead of a
// transaction; backoff turns them into a pause, not an error.
var (
	errIdle        = errors.New("outbox is empty")
	errCoolingDown = errors.New("forwarding paused after a failure")
	// errDestinationHangs: a destination call is still running (see
	// destinationCalls).
	errDestinationHangs = errors.New("forwarding waits for the destination's last call")
	errDraining         = errors.New("forwarder is closing")
)

// probingDB is the subscriber's database. Before each forwarding
// transaction it runs a read-only probe, so an empty outbox costs no write
// lock; the transaction then takes the write lock with its first statement,
// whatever the DSN's _txlock, so that the offset it reads cannot change
// under it.
type probingDB struct {
	*sql.DB
	probe wsql.Query
	lock  wsql.Query
	cool  *cooldown
	drain *drain
	held  *heldBatch
	calls *destinationCalls // Forwarder.calls
}

func (d *probingDB) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	if !d.drain.enterBatch() {
		return nil, errDraining
	}
	if d.cool.remaining() > 0 {
		return nil, errCoolingDown
	}
	if d.calls.hanging(time.Now()) {
		// A call to the destination still hangs past its ack deadline: a
		// transaction now would hold the service's write lock for
		// nothing (its messages could only be put back, or hang beside
		// it). Its writes go on meanwhile; the outbox keeps growing.
		return nil, errDestinationHangs
	}
	// The probe is a short read; without a cancellable context neither
	// database/sql nor the driver starts a watcher goroutine for it,
	// which is most of an idle poll's cost.
	var pending bool
	if err := d.QueryRowContext(context.WithoutCancel(ctx), d.probe.Query, d.probe.Args...).Scan(&pending); err != nil {
		return nil, fmt.Errorf("probe outbox: %w", err)
	}
	if !pending {
		return nil, errIdle
	}
	tx, err := d.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, d.lock.Query, d.lock.Args...); err != nil {
		return nil, errors.Join(fmt.Errorf("take write lock: %w", err), tx.Rollback())
	}
	d.held.begin(tx)
	return tx, nil
}

// backoff is the subscriber's BackoffManager: adaptive polling of an empty
// outbox, woken by the Outbox's stores, and a pause after errors.
//
// While the outbox is idle and a wake channel is set, HandleError itself
// waits (for a store, the poll interval, or stop) and returns 0, because
// the subscriber's own sleep cannot be interrupted. stop must be closed
// before the subscriber is closed. HandleError is called only by the
// subscriber's single consuming goroutine (the Forwarder subscribes once).
type backoff struct {
	minPoll, maxPoll, retry time.Duration
	nextPoll                time.Duration
	cool                    *cooldown
	drain                   *drain
	wake                    <-chan struct{}
	stop                    <-chan struct{}
	batchFailed             *atomic.Bool
}

func (b *backoff) HandleError(logger watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	b.drain.leaveBatch() // HandleError follows every poll
	switch {
	case errors.Is(err, errDraining):
		return b.maxPoll // the subscriber is closed during this sleep
	case errors.Is(err, errIdle), err == nil && noMsg:
		d := b.nextPoll
		b.nextPoll = min(2*b.nextPoll, b.maxPoll)
		return b.idle(d)
	case errors.Is(err, errCoolingDown):
		b.nextPoll = b.minPoll
		return max(b.cool.remaining(), time.Millisecond)
	case errors.Is(err, errDestinationHangs):
		// Looked at again soon: nothing but a counter is read.
		b.nextPoll = b.minPoll
		return b.maxPoll
	case errors.Is(err, context.Canceled):
		return b.maxPoll
	case err != nil && b.batchFailed != nil && b.batchFailed.Swap(false):
		// publishHeld rolled the batch back and logged why.
		b.nextPoll = b.minPoll
		return max(b.cool.remaining(), time.Millisecond)
	case err != nil:
		logger.Error("Cannot read the outbox", err, watermill.LogFields{"retry_in": b.retry})
		return b.retry
	default:
		b.nextPoll = b.minPoll
		return 0
	}
}

// idle waits up to d for a wake-up and returns what the subscriber should
// still sleep.
func (b *backoff) idle(d time.Duration) time.Duration {
	if b.wake == nil {
		return d
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.wake:
		b.nextPoll = b.minPoll
		return 0
	case <-t.C:
		return 0
	case <-b.stop:
		return d // the subscriber's sleep ends when it is closed
	}
}

// cooldown is a pause shared by the forwarding handler and the subscriber.
type cooldown struct{ until atomic.Int64 }

func (c *cooldown) trip(d time.Duration) { c.until.Store(time.Now().Add(d).UnixNano()) }

func (c *cooldown) remaining() time.Duration {
	return time.Until(time.Unix(0, c.until.Load()))
}

// drain lets shutdown wait until the subscriber can be closed without
// losing an ack: when it is between batches, or blocked on a message the
// forwarding handler holds back. Closing it in the middle of a batch, while
// an ack is on its way, would make watermill-sql drop that ack (it selects
// between the ack and the close at random) and forward the message twice.
type drain struct {
	mu       sync.Mutex
	started  bool // draining has started
	inBatch  bool
	parked   chan struct{}
	parkOnce sync.Once
}

func newDrain() *drain { return &drain{parked: make(chan struct{})} }

// enterBatch is called before each poll; false once draining started.
func (d *drain) enterBatch() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return false
	}
	d.inBatch = true
	return true
}

// leaveBatch is called after each poll, its transaction ended.
func (d *drain) leaveBatch() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inBatch = false
	if d.started {
		d.park()
	}
}

func (d *drain) draining() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.started
}

// park reports that the subscriber can be closed.
func (d *drain) park() { d.parkOnce.Do(func() { close(d.parked) }) }

// start begins draining; the channel is closed once the subscriber can be
// closed.
func (d *drain) start() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.started = true
	if !d.inBatch {
		d.park()
	}
	return d.parked
}
