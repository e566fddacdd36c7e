package sqlite

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
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
	// A write transaction first waits up to BusyTimeout for the lock file
	// beside the queue (QUEUE-writer). If it gives up on the file (its
	// holder stopped by SIGSTOP or a debugger, say), it waits up to
	// another BusyTimeout for SQLite's lock, so the first write after a
	// holder stopped can take twice BusyTimeout before it fails; while the
	// file stays held, later transactions go without it and wait for
	// SQLite's lock alone, for up to BusyTimeout each.
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
	// Default 2ms; a negative value commits them at once. At most a third
	// of Lease: an acked delivery's lease is no longer extended.
	AckDelay time.Duration

	// A process learns of other processes' commits from file change events
	// (inotify on Linux) for a file beside the queue that each writer
	// writes to after a commit that made deliveries visible (QUEUE-changes;
	// see changesSuffix): at once after a quiet spell, at most once per
	// PollMin under load, and with no work while nothing happens. Where
	// those are unavailable (or with PollOnly) it polls instead: PollMin
	// and PollMax bound how often it checks the WAL's size and time and
	// PRAGMA data_version (reads that take no lock). The interval stays at
	// PollMin for 250ms after the last change, then doubles up to PollMax.
	// Defaults 500µs and 16ms. (Go's timers below a millisecond fire after
	// about 1 ms in an otherwise idle process, so a PollMin below that acts
	// as about 1 ms there; a precise 500µs made the services slower end to
	// end: more wake-ups, each a read for every waiting subscriber.) File
	// systems shared over a network do not deliver events for other
	// machines' writes, but SQLite must not be shared that way anyway.
	PollOnly bool
	PollMin  time.Duration
	PollMax  time.Duration

	// NoLockFile makes write transactions wait for another process's
	// write lock by retrying, as they did before the processes took turns
	// through a lock file beside the queue (QUEUE-writer; see writeLock).
	// The lock file shortens publish→handler latency (p50 ×0.67, p99 ×0.6
	// at 2,000 msg/s with Go's default GOMAXPROCS) and costs a publisher
	// that sends one message at a time about a quarter of its messages a
	// second: consumers that get the lock at once claim more often. Where
	// that publisher matters more, set NoLockFile (URL: lock_file=false) in
	// every process on the file. Default false (the lock file is used).
	NoLockFile bool

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
	// receives it). Default 1h; URL parameter orphan_retention. Every
	// process on the file collects, each with its own: give them all the
	// same, or the shortest decides.
	OrphanRetention time.Duration

	// WALLimit is the write-ahead log size above which the store runs a
	// truncating checkpoint. Default 64 MiB.
	WALLimit int64

	// CheckpointInterval is how often the WAL size is checked against
	// WALLimit (a stat of the file), how often a process that does not
	// checkpoint tries to become the file's checkpointer, and how often the
	// checkpointer looks at a quiet WAL (while commits come, it copies the
	// WAL into the database every 20 ms). Default 500ms: at 20k msg/s the
	// WAL grows ~50 MB/s while readers keep it from being restarted.
	CheckpointInterval time.Duration

	// MustExist makes Open fail when the file does not exist yet, instead
	// of creating an empty queue (for tools that only inspect).
	MustExist bool

	// Logger receives the store's logs. Default: watermill.NopLogger.
	Logger watermill.LoggerAdapter

	// now is the clock; tests may replace it.
	now func() time.Time
	// versionCheckEvery is how often the event-driven change watcher also
	// reads PRAGMA data_version (default fileEventsSafetyNet); tests
	// lengthen it to see that events alone wake the subscribers.
	versionCheckEvery time.Duration
	// waitSafetyNet is the longest a subscriber with nothing to do waits
	// before it looks again unwoken (default a second); tests lengthen it
	// to see that the change watcher wakes it.
	waitSafetyNet time.Duration
	// aloneWait is how long a message whose previous delivery was
	// abandoned waits to run alone before it runs beside the others
	// (default sologate.DefaultAloneWait); tests shorten it.
	aloneWait time.Duration
	// beforeLooking, when set, is called once by the change watcher when a
	// subscriber first waits, before the watcher first looks for changes;
	// tests hold it to commit before the watch is in place.
	beforeLooking func()
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
	if c.versionCheckEvery == 0 {
		c.versionCheckEvery = fileEventsSafetyNet
	}
	if c.waitSafetyNet == 0 {
		c.waitSafetyNet = time.Second
	}
}

// check reports a Synchronous the store does not know.
func (s Synchronous) check() error {
	if s != SynchronousNormal && s != SynchronousFull {
		return fmt.Errorf("synchronous must be %s or %s, got %q", SynchronousNormal, SynchronousFull, string(s))
	}
	return nil
}

// The smallest lease and busy timeout the store accepts.
const (
	minLease       = 10 * time.Millisecond
	minBusyTimeout = time.Millisecond
)

// Validate reports settings the store cannot work with.
func (c Config) Validate() error {
	var errs []error
	if err := c.Synchronous.check(); err != nil {
		errs = append(errs, err)
	}
	if c.BusyTimeout < minBusyTimeout {
		errs = append(errs, fmt.Errorf("busy timeout must be at least %s, got %s", minBusyTimeout, c.BusyTimeout))
	}
	if c.Lease < minLease {
		errs = append(errs, fmt.Errorf("lease must be at least %s, got %s", minLease, c.Lease))
	}
	if c.AckDelay > c.Lease/3 {
		// An acked delivery's lease is no longer extended: an ack held
		// back longer could commit after it ran out, when another
		// consumer may have the message.
		errs = append(errs, fmt.Errorf("ack delay must be at most a third of the lease (%s), got %s", c.Lease/3, c.AckDelay))
	}
	if c.ClaimBatch < 1 || c.MaxWriteBatch < 1 || c.GCBatch < 1 {
		errs = append(errs, fmt.Errorf("claim, write and GC batches must be positive, got %d, %d and %d", c.ClaimBatch, c.MaxWriteBatch, c.GCBatch))
	}
	if c.PollMin <= 0 || c.PollMax < c.PollMin {
		errs = append(errs, errors.New("poll interval must be positive with PollMin <= PollMax"))
	}
	if c.NackDelay < 0 || c.GCInterval <= 0 || c.OrphanRetention <= 0 || c.CheckpointInterval <= 0 {
		errs = append(errs, errors.New("nack delay, GC interval, orphan retention and checkpoint interval must be positive"))
	}
	return errors.Join(errs...)
}

// ValidateAsOpened reports what Open would refuse of c: Validate with the
// defaults in the fields left zero. For checking settings (a queue URL's
// parameters) before anything opens.
func (c Config) ValidateAsOpened() error {
	c.setDefaults()
	return c.Validate()
}

// urlParams names the query parameters of a sqlite:// queue URL that
// ApplyURLParams understands.
const urlParams = "synchronous, lease, busy_timeout, nack_delay, ack_delay, claim_batch, poll_min, lock_file, orphan_retention"

// minOrphanRetention is the least orphan_retention in a queue URL: a
// group registered a moment after the first publish still finds the
// messages.
const minOrphanRetention = time.Second

// pollMinLowest and pollMinHighest bound poll_min in a queue URL: below
// 10µs a busy process would wake its subscribers for nearly every write
// of every process; above the default PollMax it would exceed the
// slowest polling interval.
const (
	pollMinLowest  = 10 * time.Microsecond
	pollMinHighest = 16 * time.Millisecond
)

// ApplyURLParams sets the fields named by the query parameters of a
// sqlite:// queue URL (rawQuery is the part after "?"): synchronous=FULL,
// lease=30s, busy_timeout=30s, nack_delay=0s, ack_delay=2ms, claim_batch=64,
// poll_min=500us.
// A parameter left out keeps the field as it is (zero takes the default).
// A parameter given explicitly must be a value the store can use: lease=0s,
// busy_timeout=0s or claim_batch=0 are errors naming the parameter, not a
// way to ask for the default. Zero is valid where it means something:
// nack_delay=0s redelivers at once, ack_delay=0s commits acks at once.
func (c *Config) ApplyURLParams(rawQuery string) error {
	if rawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return fmt.Errorf("parameters: %w", err)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys) // errors in a stable order
	var errs []error
	for _, key := range keys {
		vals := q[key]
		if err := c.applyURLParam(key, vals[len(vals)-1]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) applyURLParam(key, v string) error {
	switch key {
	case "synchronous":
		s := Synchronous(strings.ToUpper(v))
		if err := s.check(); err != nil {
			return err
		}
		c.Synchronous = s
		return nil
	case "lease", "busy_timeout", "nack_delay", "ack_delay", "poll_min", "orphan_retention":
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s=%q: %w", key, v, err)
		}
		switch key {
		case "lease":
			if d < minLease {
				return fmt.Errorf("lease must be at least %s, got %s", minLease, d)
			}
			c.Lease = d
		case "busy_timeout":
			if d < minBusyTimeout {
				return fmt.Errorf("busy_timeout must be at least %s, got %s", minBusyTimeout, d)
			}
			c.BusyTimeout = d
		case "nack_delay":
			if d < 0 {
				return fmt.Errorf("nack_delay must not be negative, got %s (0s redelivers at once)", d)
			}
			c.NackDelay = d
		case "ack_delay":
			if d < 0 {
				return fmt.Errorf("ack_delay must not be negative, got %s (0s commits acks at once)", d)
			}
			c.AckDelay = d
			if d == 0 {
				c.AckDelay = -1 // in a URL, 0 means "commit acks at once"
			}
		case "poll_min":
			if d < pollMinLowest || d > pollMinHighest {
				return fmt.Errorf("poll_min must be from %s to %s, got %s", pollMinLowest, pollMinHighest, d)
			}
			c.PollMin = d
		case "orphan_retention":
			if d < minOrphanRetention {
				return fmt.Errorf("orphan_retention must be at least %s, got %s", minOrphanRetention, d)
			}
			c.OrphanRetention = d
		}
		return nil
	case "lock_file":
		use, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("lock_file=%q: want true or false", v)
		}
		c.NoLockFile = !use
		return nil
	case "claim_batch":
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s=%q: %w", key, v, err)
		}
		if n < 1 {
			return fmt.Errorf("claim_batch must be at least 1, got %d", n)
		}
		c.ClaimBatch = n
		return nil
	default:
		return fmt.Errorf("unknown parameter %q (known: %s)", key, urlParams)
	}
}
