package postgres

import (
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// Config configures a PostgreSQL queue store. The zero value is ready to
// use: Open calls setDefaults and then Validate.
type Config struct {
	// PollInterval is how long an idle subscription waits before it looks
	// for new messages again. While nothing arrives the wait doubles up to
	// MaxPollInterval; a poll that finds messages resets it. A poll is a
	// short read-only transaction (four round trips). Defaults 10ms and
	// 100ms: an idle consumer picks up a new message within about 100ms.
	PollInterval    time.Duration
	MaxPollInterval time.Duration

	// BusyPollInterval is how long a consumer that found its group busy
	// (another consumer of the group is handling a batch) waits before it
	// tries again. It bounds how fast a standby consumer takes over from one
	// that stopped: at most this long after the stopped one's transaction
	// ends. A consumer that exits or crashes ends it at once; one that is
	// frozen (SIGSTOP, a host cut off by the network) is ended by the
	// server after HoldTimeout. Default 500ms.
	BusyPollInterval time.Duration

	// ResendInterval is the pause before a nacked message is handed out
	// again, when the nack carries no delay of its own (Watermill's
	// delay.DelayedForKey metadata, which the retry middleware sets).
	// Default 50ms.
	ResendInterval time.Duration

	// RetryInterval is the pause after a failed poll (server unreachable,
	// for example) before the next one. While polls keep failing the pause
	// doubles, up to MaxRetryInterval, each one jittered down by up to a
	// half (so that many subscriptions do not reconnect in step); a poll
	// that works resets it. Lock conflicts between competing consumers of
	// one group are retried at once. Defaults 500ms and 5s (or
	// RetryInterval, when that is longer).
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration

	// AckDeadline is how long a delivered message may stay unacknowledged.
	// After it, watermill-sql gives the message up and the group will
	// receive it again; this subscriber hands it out again only after the
	// first handler has finished (an ack that arrives late is honoured:
	// the redelivery is acked without being handed out). The handler's
	// message context ends then too; its failure then counts as an
	// attempt (see retry.NewMiddleware). Default 30s.
	//
	// It also bounds how long a subscription's transaction, which holds
	// its group's lock, may stay idle: see HoldTimeout.
	AckDeadline time.Duration

	// SubscribeBatchSize is how many messages one poll reads. The batch is
	// handed out one message at a time inside one transaction; the group's
	// offset is stored when the batch ends, so a crash redelivers at most
	// the acked part of one batch. Default 50.
	SubscribeBatchSize int

	// MaxOpenConns caps the connections used for publishing, dead letters
	// and statistics, and separately those used for delivery records (see
	// SynchronousDeliveryRecords). Default 10.
	MaxOpenConns int

	// SynchronousDeliveryRecords makes every write of a delivery record
	// (a claim counting an attempt, an ack, a failure) wait until the
	// server has flushed it to disk, as every other write of the queue
	// does. By default they commit with synchronous_commit=off, on
	// connections of their own: such a commit is visible at once and
	// survives a crash of any consumer, but a crash of the PostgreSQL
	// server itself may lose the last moments of them (up to three times
	// the server's wal_writer_delay, 200ms by default): a message being
	// handled or retried then may count fewer attempts than it had (so it
	// may be tried more than MaxAttempts times), a nack's delay may be
	// forgotten, and the ack marks of a batch that had not committed when
	// the server crashed may be lost, so those messages are handled again
	// (up to about a batch of them; the consumers' inboxes absorb it).
	// Messages, offsets
	// and dead letters are never written that way, and PostgreSQL flushes
	// the log in order, so a stored offset implies that the claims before
	// it are on disk too. Asynchronous records roughly double how many
	// messages a consumer group can take per second (each delivery is one
	// claim commit; see docs/queue-benchmarks.md).
	SynchronousDeliveryRecords bool

	// SubscriberMaxOpenConns caps the connections used by subscription
	// transactions: every Subscribe call holds one while it handles a batch
	// (a handler that runs keeps it) and for the moment of each poll. It is
	// a separate pool so that subscriptions can never starve the publishing
	// and bookkeeping their own handlers need. Default 20.
	SubscriberMaxOpenConns int

	// ConnectTimeout bounds opening one connection when the DSN has no
	// connect_timeout, or connect_timeout=0 (which libpq reads as "wait
	// for ever": a queue that hangs at start is worse than one that says
	// the server does not answer). Default 5s.
	ConnectTimeout time.Duration

	// TCPUserTimeout is the TCP_USER_TIMEOUT of the queue's connections
	// (Linux only; elsewhere not set): how long data sent on a connection
	// may stay unacknowledged before the kernel gives the connection up.
	// Keepalives (15s + 3 × 5s) notice a peer gone while a connection is
	// idle, but not while it has data in flight: a connection cut without
	// a reset (a host or a route gone, a firewall dropping packets) then
	// waits out TCP's retransmissions, about 15 minutes, in a
	// subscription or a pool slot. Default 30s, as long as the keepalives
	// take, far more than a live server needs to acknowledge a packet;
	// negative leaves the system's default.
	TCPUserTimeout time.Duration

	// CloseTimeout is how long Close lets subscriptions finish their
	// current transaction (storing the offsets of acked messages) before
	// it cancels them. Default 5s.
	CloseTimeout time.Duration

	// GCInterval is how often messages every consumer group of their topic
	// has acknowledged are deleted (watermill-sql itself keeps every
	// message). Default 10s. GCBatchSize caps one delete. Default 5000.
	// Topics nobody subscribed to are left alone.
	GCInterval  time.Duration
	GCBatchSize int

	// MustExist opens an existing queue without changing it, as tools such
	// as queuectl want: Open creates no table (it fails with "not a queue:
	// table … missing" when one of the package's tables is not there) and
	// the backend collects no garbage, so a role that may only SELECT can
	// read statistics, topics and dead letters. Publishing or subscribing
	// to a topic still creates that topic's tables.
	MustExist bool

	// Logger receives the store's logs. Default: watermill.NopLogger.
	Logger watermill.LoggerAdapter

	// reportOutageEvery is how often an operation that keeps failing (a
	// subscription's polls, the owner lock) says so (default
	// outageReportEvery); tests shorten it.
	reportOutageEvery time.Duration

	// ownerCheckEvery is how often the owner lock's session is checked
	// (default ownerCheckInterval); tests shorten it.
	ownerCheckEvery time.Duration

	// aloneWait is how long a message whose previous delivery was
	// abandoned waits to run alone before it runs beside the others
	// (default sologate.DefaultAloneWait); tests shorten it.
	aloneWait time.Duration
}

// HoldTimeout is the idle_in_transaction_session_timeout of the
// subscription connections: how long the server lets a subscription's
// transaction, and with it its consumer group's lock, sit without a
// statement before it ends the session. A live subscription never comes
// near it: watermill-sql ends a message's wait at AckDeadline (nack delays
// and redeliveries of the message included, plus one ResendInterval), and
// a subscription that has been idle in its transaction for AckDeadline/4
// sends a no-op statement before it hands out the next message of its
// batch, so a batch of slow handlers, each within AckDeadline, is never
// cut. It is 1.5 × AckDeadline + ResendInterval + 2s (47s with the
// defaults), which leaves a quarter of AckDeadline plus 2s for scheduling.
// A frozen consumer (SIGSTOP, or its host cut off by the network) sends
// nothing: the server ends its session then, which releases the group's
// lock, and another consumer of the group takes over within
// BusyPollInterval, with the frozen batch's messages (acked or not)
// delivered again.
func (c Config) HoldTimeout() time.Duration {
	c.setDefaults()
	return c.AckDeadline + c.AckDeadline/2 + c.ResendInterval + holdSlack
}

// holdSlack is the part of HoldTimeout above what a live subscription
// needs, for a process that is slow to be scheduled.
const holdSlack = 2 * time.Second

// touchInterval is how long a subscription's transaction may have been
// idle before the subscription sends it a no-op statement (see
// HoldTimeout).
func (c Config) touchInterval() time.Duration { return c.AckDeadline / 4 }

func (c *Config) setDefaults() {
	if c.PollInterval == 0 {
		c.PollInterval = 10 * time.Millisecond
	}
	if c.MaxPollInterval == 0 {
		c.MaxPollInterval = 10 * c.PollInterval
	}
	if c.BusyPollInterval == 0 {
		c.BusyPollInterval = 500 * time.Millisecond
	}
	if c.ResendInterval == 0 {
		c.ResendInterval = 50 * time.Millisecond
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = 500 * time.Millisecond
	}
	if c.MaxRetryInterval == 0 {
		c.MaxRetryInterval = max(5*time.Second, c.RetryInterval)
	}
	if c.AckDeadline == 0 {
		c.AckDeadline = 30 * time.Second
	}
	if c.SubscribeBatchSize == 0 {
		c.SubscribeBatchSize = 50
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = 10
	}
	if c.SubscriberMaxOpenConns == 0 {
		c.SubscriberMaxOpenConns = 20
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.TCPUserTimeout == 0 {
		c.TCPUserTimeout = keepaliveIdle + keepaliveCount*keepaliveInterval
	}
	if c.GCInterval == 0 {
		c.GCInterval = 10 * time.Second
	}
	if c.GCBatchSize == 0 {
		c.GCBatchSize = 5000
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports settings the store cannot work with.
func (c Config) Validate() error {
	var errs []error
	if c.PollInterval <= 0 || c.MaxPollInterval < c.PollInterval {
		errs = append(errs, errors.New("poll interval must be positive with PollInterval <= MaxPollInterval"))
	}
	if c.BusyPollInterval <= 0 || c.ResendInterval <= 0 || c.RetryInterval <= 0 {
		errs = append(errs, errors.New("busy poll, resend and retry intervals must be positive"))
	}
	if c.MaxRetryInterval < c.RetryInterval {
		errs = append(errs, errors.New("max retry interval must not be below the retry interval"))
	}
	if c.AckDeadline < 10*time.Millisecond {
		errs = append(errs, errors.New("ack deadline must be at least 10ms"))
	}
	if c.SubscribeBatchSize < 1 {
		errs = append(errs, errors.New("subscribe batch size must be positive"))
	}
	if c.MaxOpenConns < 1 || c.SubscriberMaxOpenConns < 1 {
		errs = append(errs, errors.New("connection limits must be positive"))
	}
	if c.GCInterval < 0 || c.GCBatchSize < 0 {
		errs = append(errs, errors.New("GC interval and batch size must not be negative"))
	}
	if c.ConnectTimeout <= 0 || c.CloseTimeout <= 0 {
		errs = append(errs, errors.New("connect and close timeouts must be positive"))
	}
	return errors.Join(errs...)
}

// outageReportEvery is how often an operation that keeps failing says so.
func (c Config) outageReportEvery() time.Duration {
	if c.reportOutageEvery > 0 {
		return c.reportOutageEvery
	}
	return outageReportEvery
}

// ownerCheckInterval is how often the owner lock's session is checked.
func (c Config) ownerCheckInterval() time.Duration {
	if c.ownerCheckEvery > 0 {
		return c.ownerCheckEvery
	}
	return ownerCheckInterval
}
