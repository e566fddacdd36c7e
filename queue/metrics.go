package queue

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/retry"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// Metric names. Every instrument carries messaging.destination.name (the
// topic) and messaging.consumer.group.name where it applies.
const (
	MetricProcessed    = "queue.messages.processed"     // handler runs, by outcome: ok (the handler succeeded) or error (it failed or panicked; the message was then retried or dead-lettered)
	MetricRetried      = "queue.messages.retried"       // failures scheduled for another attempt
	MetricDeadLettered = "queue.messages.dead_lettered" // messages given up on
	MetricRanAlone     = "queue.messages.ran_alone"     // handler runs of messages whose previous delivery was abandoned (backend.MetadataAbandoned): each runs alone in its process, unless a hung handler of the process kept it waiting past the alone wait (it then runs beside it, logged)
	MetricDuration     = "queue.handler.duration"       // seconds per handler run
	MetricDepth        = "queue.group.depth"            // messages waiting for a group (lag)
	MetricOldestAge    = "queue.group.oldest_age"       // seconds the oldest waiting message has waited
	MetricDeadLetters  = "queue.dead_letters"           // messages in the dead-letter store

	// SQLite backend only: this process's write transactions on the queue
	// file (each takes the file's one write lock) and the operations they
	// carried, by "operation" (publish, claim, ack, …). Operations per
	// transaction is how much group commit saves.
	MetricWriteTransactions = "queue.sqlite.write_transactions"
	MetricWriteOperations   = "queue.sqlite.write_operations"
	// SQLite backend only: seconds this process's writer waited for the
	// queue file's write lock, and held it (sqlite.WriteStats).
	MetricWriteLockWait = "queue.sqlite.write_lock_wait"
	MetricWriteLockHeld = "queue.sqlite.write_lock_held"
)

// DurationBuckets returns the bucket boundaries, in seconds, of the
// handler-duration histograms: the queue's MetricDuration and the
// services' own, so that the two can be compared bucket by bucket. A
// handler normally takes 1 to 5 ms and up to seconds under faults (slow
// dependencies, lock waits); OpenTelemetry's default boundaries (0, 5, 10,
// … 10000) are meant for milliseconds and would put every run in the
// first bucket.
func DurationBuckets() []float64 {
	return []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
}

var (
	attrOperation = attribute.Key("operation")
	attrTopic     = attribute.Key("messaging.destination.name")
	attrGroup     = attribute.Key("messaging.consumer.group.name")
	attrResult    = attribute.Key("outcome")
)

// instruments are the queue's metrics for one Queue.
type instruments struct {
	processed, retried, deadLettered, ranAlone metric.Int64Counter
	duration                                   metric.Float64Histogram
}

func newInstruments(mp metric.MeterProvider) (*instruments, error) {
	m := mp.Meter("github.com/orderflow/orderflow/queue")
	var ins instruments
	var errs []error
	var err error
	ins.processed, err = m.Int64Counter(MetricProcessed, metric.WithDescription("Handler runs, by outcome: ok, or error (the message was then retried or dead-lettered)."))
	errs = append(errs, err)
	ins.retried, err = m.Int64Counter(MetricRetried, metric.WithDescription("Failed messages scheduled for another attempt."))
	errs = append(errs, err)
	ins.deadLettered, err = m.Int64Counter(MetricDeadLettered, metric.WithDescription("Messages moved to the dead-letter store."))
	errs = append(errs, err)
	ins.ranAlone, err = m.Int64Counter(MetricRanAlone, metric.WithDescription("Handler runs of messages whose previous delivery was abandoned (its process died or froze): each runs alone in its process unless a hung handler kept it waiting too long."))
	errs = append(errs, err)
	ins.duration, err = m.Float64Histogram(MetricDuration, metric.WithUnit("s"), metric.WithDescription("Time a handler run took (the backoff and dead-lettering after a failure excluded)."),
		metric.WithExplicitBucketBoundaries(DurationBuckets()...))
	errs = append(errs, err)
	return &ins, errors.Join(errs...)
}

// start exports the counters of topic and group at 0 (processed by
// outcome, retried, dead-lettered, ran alone), so that the first retry or
// dead letter after a start is an increase that increase(), rate() and
// alerts see, not the first sample of a new series.
func (ins *instruments) start(topic, group string) {
	ctx := context.Background()
	attrs := metric.WithAttributes(attrTopic.String(topic), attrGroup.String(group))
	for _, outcome := range []string{"ok", "error"} {
		ins.processed.Add(ctx, 0, attrs, metric.WithAttributes(attrResult.String(outcome)))
	}
	for _, c := range []metric.Int64Counter{ins.retried, ins.deadLettered, ins.ranAlone} {
		c.Add(ctx, 0, attrs)
	}
}

// middleware counts outcomes and durations per topic and group.
func (ins *instruments) middleware(group string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			start := time.Now()
			out, err := h(msg)
			attrs := metric.WithAttributes(attrTopic.String(message.SubscribeTopicFromCtx(msg.Context())), attrGroup.String(group))
			outcome := "ok"
			if err != nil {
				outcome = "error"
			}
			ctx := context.WithoutCancel(msg.Context())
			ins.processed.Add(ctx, 1, attrs, metric.WithAttributes(attrResult.String(outcome)))
			ins.duration.Record(ctx, time.Since(start).Seconds(), attrs)
			if _, ok := msg.Metadata[backend.MetadataAbandoned]; ok {
				ins.ranAlone.Add(ctx, 1, attrs)
			}
			return out, err
		}
	}
}

// registerQueueGauges reports depth, oldest age and dead letters from the
// backend's statistics when metrics are collected, at most once per
// minInterval (a stats query scans the deliveries).
//
// The stats query is bounded by timeout, whatever the scrape's context: a
// database that does not answer (black-holed by the network) must not
// hang GET /metrics, whose other metrics say what is wrong. A query that
// fails or times out leaves the last values reported (none before the
// first that worked), and is tried again after minInterval; it is logged
// at most once per statsLogEvery. A scrape that comes while another one's
// query runs reports the last values without waiting for it.
func registerQueueGauges(mp metric.MeterProvider, insp backend.Inspector, minInterval, timeout time.Duration, logger watermill.LoggerAdapter) (metric.Registration, error) {
	m := mp.Meter("github.com/orderflow/orderflow/queue")
	depth, err1 := m.Int64ObservableGauge(MetricDepth, metric.WithDescription("Messages not yet acknowledged by a consumer group (its lag), in flight included."))
	oldest, err2 := m.Float64ObservableGauge(MetricOldestAge, metric.WithUnit("s"), metric.WithDescription("Age of the oldest message a consumer group has not acknowledged."))
	dead, err3 := m.Int64ObservableGauge(MetricDeadLetters, metric.WithDescription("Messages in the dead-letter store, by original topic."))
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	var (
		querying sync.Mutex // held by the scrape whose stats query runs
		mu       sync.Mutex // guards the fields below
		last     time.Time  // of the last query, whether it worked or not
		cached   []backend.TopicStats
		logged   time.Time // when a failed query was last logged
		failed   int       // failed queries since
	)
	refresh := func(ctx context.Context) {
		if !querying.TryLock() {
			return // another scrape's query runs: report the last values
		}
		defer querying.Unlock()
		mu.Lock()
		stale := time.Since(last) >= minInterval
		mu.Unlock()
		if !stale {
			return
		}
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		stats, err := insp.Stats(qctx)
		mu.Lock()
		defer mu.Unlock()
		last = time.Now()
		if err == nil {
			cached = stats
			return
		}
		failed++
		if time.Since(logged) >= statsLogEvery {
			retry.Warn(logger, "Queue statistics unavailable; the queue gauges report their last values", err,
				watermill.LogFields{"failed_queries": failed, "timeout": timeout.String()})
			logged, failed = time.Now(), 0
		}
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		refresh(ctx)
		mu.Lock()
		defer mu.Unlock()
		for _, t := range cached {
			o.ObserveInt64(dead, t.DeadLetters, metric.WithAttributes(attrTopic.String(t.Topic)))
			for _, g := range t.Groups {
				attrs := metric.WithAttributes(attrTopic.String(t.Topic), attrGroup.String(g.ConsumerGroup))
				o.ObserveInt64(depth, g.Depth, attrs)
				o.ObserveFloat64(oldest, g.OldestAge.Seconds(), attrs)
			}
		}
		return nil
	}, depth, oldest, dead)
}

// statsTimeout bounds the queue gauges' stats query; statsLogEvery is
// how often a failing one is logged, at most.
const (
	statsTimeout  = 2 * time.Second
	statsLogEvery = time.Minute
)

// writeCounter is a backend that counts its write transactions: the
// SQLite backend.
type writeCounter interface {
	WriteStats() sqlite.WriteStats
}

// registerWriteCounters reports b's write transactions and operations.
func registerWriteCounters(mp metric.MeterProvider, b writeCounter) (metric.Registration, error) {
	m := mp.Meter("github.com/orderflow/orderflow/queue")
	txs, err1 := m.Int64ObservableCounter(MetricWriteTransactions,
		metric.WithDescription("Write transactions this process committed on the SQLite queue file, each holding the file's write lock."))
	ops, err2 := m.Int64ObservableCounter(MetricWriteOperations,
		metric.WithDescription("Operations those write transactions carried, by operation (publish, claim, ack, ...)."))
	wait, err3 := m.Float64ObservableCounter(MetricWriteLockWait, metric.WithUnit("s"),
		metric.WithDescription("Time this process's writer waited for the SQLite queue file's write lock (its turn on the lock file, then BEGIN IMMEDIATE)."))
	held, err4 := m.Float64ObservableCounter(MetricWriteLockHeld, metric.WithUnit("s"),
		metric.WithDescription("Time this process's writer held the SQLite queue file's write lock (BEGIN granted to COMMIT or ROLLBACK returned); summed over the processes, near the wall time when the lock is the bottleneck."))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := b.WriteStats()
		o.ObserveInt64(txs, s.Transactions)
		for op, n := range s.Operations {
			o.ObserveInt64(ops, n, metric.WithAttributes(attrOperation.String(op)))
		}
		o.ObserveFloat64(wait, s.LockWait.Seconds())
		o.ObserveFloat64(held, s.LockHeld.Seconds())
		return nil
	}, txs, ops, wait, held)
}
