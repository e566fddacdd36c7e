package sqlite

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// Synchronous is SQLite's durability setting for WAL mode.
type Synchronous string

const (
	// SynchronousNormal syncs the WAL at checkpoints only: a committed
	// message survives a crash of the process, but a power loss may lose the
	// last transactions. The default.
	SynchronousNormal Synchronous = "NORMAL"
	// SynchronousFull syncs the WAL on every commit: a committed message
	// survives a power loss too, at a large cost in commits per second.
	SynchronousFull Synchronous = "FULL"
)

// Config configures a SQLite queue store. The zero value is ready to use:
// Open calls setDefaults and then Validate.
type Config struct {
	// Synchronous is SynchronousNormal (default) or SynchronousFull.
	Synchronous Synchronous

	// BusyTimeout is how long a statement waits for another process's
	// write lock before failing. Default 30s. Under saturation one
	// statement has been measured waiting over a second, so keep it long.
	BusyTimeout time.Duration

	// Lease is how long a claimed delivery stays invisible to other
	// consumers of its group. A consumer extends the lease of every
	// message it holds every Lease/3, so a slow handler keeps its message;
	// a crashed consumer's messages come back after at most Lease.
	// Default 30s.
	Lease time.Duration

	// ClaimBatch is how many deliveries one claim takes at most. A claim
	// also takes no more than the subscriber's free handler slots plus
	// SubscriberConfig.Concurrency, so that few deliveries wait, leased,
	// behind busy handlers while another consumer of the group is idle. A
	// larger batch means fewer write transactions; after a crash, at most
	// the claimed batch is redelivered. Default 64.
	ClaimBatch int

	// MaxWriteBatch caps how many queued write operations (publishes,
	// claims, acks, nacks) the store's writer commits in one transaction.
	// Default 512.
	MaxWriteBatch int

	// AckDelay is how long the writer may hold back writes nobody waits
	// for (acks, nacks, releases) so that they share a transaction with
	// later ones or with the next claim or publish. Every commit hands
	// SQLite's write lock between processes, so acks committed one by one
	// cost far more than acks committed together. The price: after a
	// crash, acks of the last AckDelay are lost and those messages are
	// delivered again (which at-least-once delivery allows anyway).
	// Default 2ms; a negative value commits them at once.
	AckDelay time.Duration

	// A process learns of other processes' commits from file change events
	// for the write-ahead log (inotify on Linux): at once after a quiet
	// spell, at most once per PollMin under load, and with no work while
	// nothing happens. Where those are unavailable (or with PollOnly) it
	// polls instead: PollMin and PollMax bound how often it checks the
	// WAL's size and time and PRAGMA data_version (reads that take no
	// lock). The interval stays at PollMin for 250ms after the last change,
	// then doubles up to PollMax. Defaults 500µs and 16ms. File
	// systems shared over a network do not deliver events for other
	// machines' writes, but SQLite must not be shared that way anyway.
	PollOnly bool
	PollMin  time.Duration
	PollMax  time.Duration

	// NackDelay is the redelivery delay of a nacked message that carries no
	// delay of its own (the retry middleware sets one with exponential
	// backoff through Watermill's delay metadata). Default 0: redeliver at
	// once.
	NackDelay time.Duration

	// GCInterval is how often acknowledged messages are deleted.
	// Default 1s. GCBatch caps the rows one delete removes. Default 5000.
	GCInterval time.Duration
	GCBatch    int

	// OrphanRetention is how long a message of a topic that no consumer
	// group has subscribed to is kept (so that a group registered later still
	// receives it). Default 1h.
	OrphanRetention time.Duration

	// WALLimit is the write-ahead log size above which the store runs a
	// truncating checkpoint. Default 64 MiB.
	WALLimit int64

	// CheckpointInterval is how often the WAL size is checked (a stat of
	// the file). Default 500ms: at 20k msg/s the WAL grows ~50 MB/s while
	// readers keep it from being restarted.
	CheckpointInterval time.Duration

	// MustExist makes Open fail when the file does not exist yet, instead
	// of creating an empty queue (for tools that only inspect).
	MustExist bool

	// Logger receives the store's logs. Default: watermill.NopLogger.
	Logger watermill.LoggerAdapter

	// now is the clock; tests may replace it.
	now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Synchronous == "" {
		c.Synchronous = SynchronousNormal
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = 30 * time.Second
	}
	if c.Lease == 0 {
		c.Lease = 30 * time.Second
	}
	if c.ClaimBatch == 0 {
		c.ClaimBatch = 64
	}
	if c.MaxWriteBatch == 0 {
		c.MaxWriteBatch = 512
	}
	if c.AckDelay == 0 {
		c.AckDelay = 2 * time.Millisecond
	}
	if c.PollMin == 0 {
		c.PollMin = 500 * time.Microsecond
	}
	if c.PollMax == 0 {
		c.PollMax = 16 * time.Millisecond
	}
	if c.GCInterval == 0 {
		c.GCInterval = time.Second
	}
	if c.GCBatch == 0 {
		c.GCBatch = 5000
	}
	if c.OrphanRetention == 0 {
		c.OrphanRetention = time.Hour
	}
	if c.WALLimit == 0 {
		c.WALLimit = 64 << 20
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 500 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
	if c.now == nil {
		c.now = time.Now
	}
}

// Validate reports settings the store cannot work with.
func (c Config) Validate() error {
	var errs []error
	if c.Synchronous != SynchronousNormal && c.Synchronous != SynchronousFull {
		errs = append(errs, fmt.Errorf("synchronous must be %s or %s, got %q", SynchronousNormal, SynchronousFull, c.Synchronous))
	}
	if c.BusyTimeout < time.Millisecond {
		errs = append(errs, errors.New("busy timeout must be at least 1ms"))
	}
	if c.Lease < 10*time.Millisecond {
		errs = append(errs, errors.New("lease must be at least 10ms"))
	}
	if c.ClaimBatch < 1 || c.MaxWriteBatch < 1 || c.GCBatch < 1 {
		errs = append(errs, errors.New("claim, write and GC batches must be positive"))
	}
	if c.PollMin <= 0 || c.PollMax < c.PollMin {
		errs = append(errs, errors.New("poll interval must be positive with PollMin <= PollMax"))
	}
	if c.NackDelay < 0 || c.GCInterval <= 0 || c.OrphanRetention <= 0 || c.CheckpointInterval <= 0 {
		errs = append(errs, errors.New("nack delay, GC interval, orphan retention and checkpoint interval must be positive"))
	}
	return errors.Join(errs...)
}
