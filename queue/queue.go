// Package queue is the one thing an orderflow service needs to talk to the
// others: it opens the shared queue from a URL, gives a traced publisher, and
// runs Watermill handlers for a consumer group with retries, dead letters
// and tracing already wired in. Services write handlers; they never see
// which backend is underneath.
//
//	q, err := queue.Open(ctx, queue.Config{URL: "sqlite://data/queue.db"})
//	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "inventory"})
//	r.Handle("reserve-stock", "inventory.commands", handler)
//	err = r.Run(ctx) // until ctx ends; in-flight handlers finish first
//
// Delivery is at least once: a handler may see a message again (after a
// crash, a lost lease or a retry), so handlers make their effects
// idempotent — the inbox package does that with a local transaction.
package queue

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/memory"
	"github.com/orderflow/orderflow/queue/postgres"
	"github.com/orderflow/orderflow/queue/retry"
	"github.com/orderflow/orderflow/queue/sqlite"
	"github.com/orderflow/orderflow/queue/tracing"
)

// Permanent marks a handler error that no retry can fix (an undecodable
// payload, say): the message goes to the dead-letter store at once.
func Permanent(err error) error { return retry.Permanent(err) }

// ErrPermanent matches errors wrapped by Permanent.
var ErrPermanent = retry.ErrPermanent

// Unavailable marks a handler error that says the consumer itself could
// not work (its database full or failing), not the message: it is retried
// for as long as that lasts, never dead-lettered for it (retry.Unavailable).
func Unavailable(err error) error { return retry.Unavailable(err) }

// ErrUnavailable matches errors wrapped by Unavailable.
var ErrUnavailable = retry.ErrUnavailable

// Config says which queue to open and how to instrument it.
type Config struct {
	// URL selects the backend: sqlite://PATH (a file shared by every
	// process on the machine; relative paths are relative to the working
	// directory, sqlite:///abs/path for absolute ones) or
	// postgres://user@host:port/db, or memory:// (Watermill's GoChannel,
	// in-process only, no persistence: for benchmarks). Query parameters tune the SQLite
	// backend: synchronous=FULL, lease=30s, busy_timeout=30s.
	URL string

	// Logger receives the queue's logs. Default: none.
	Logger watermill.LoggerAdapter
	// TracerProvider and Propagator for producer and consumer spans.
	// Defaults: the OpenTelemetry globals and W3C trace context.
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// SpanAttributes are message metadata the producer and consumer spans
	// carry as attributes: metadata key → attribute key
	// (tracing.Config.MetadataAttributes). Default none.
	SpanAttributes map[string]string
	// MeterProvider, when set, receives the queue's metrics (see the
	// Metric* names): per topic and group, messages processed, retried and
	// dead-lettered, handler durations, depth (lag), oldest age and
	// dead-letter counts.
	MeterProvider metric.MeterProvider

	// SQLite and Postgres override the backends' defaults; the URL's
	// parameters are applied on top.
	SQLite   sqlite.Config
	Postgres postgres.Config
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports a URL whose form no backend takes: an unknown scheme,
// or a SQLite URL without a path. It opens nothing and checks no more than
// that; ValidateURL also checks the URL's parameters and settings, and
// Open what only opening can tell.
func (c Config) Validate() error {
	_, err := parseURL(c.URL)
	return err
}

// Queue is an open connection to the shared queue.
type Queue struct {
	cfg       Config
	backend   backend.Backend
	publisher message.Publisher
	logger    watermill.LoggerAdapter
	metrics   *instruments // nil without a MeterProvider
	gauges    metric.Registration
	writes    metric.Registration // SQLite only
}

// Open connects to the queue named by cfg.URL.
func Open(ctx context.Context, cfg Config) (*Queue, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err // says which URL, as OpenBackend's errors do
	}
	b, err := OpenBackend(ctx, cfg)
	if err != nil {
		return nil, err
	}
	q := &Queue{cfg: cfg, backend: b, logger: cfg.Logger}
	q.publisher = tracing.NewPublisher(b.Publisher(), q.tracingConfig(""))
	if cfg.MeterProvider != nil {
		if q.metrics, err = newInstruments(cfg.MeterProvider); err == nil {
			q.gauges, err = registerQueueGauges(cfg.MeterProvider, b.Inspector(), 5*time.Second, statsTimeout, cfg.Logger)
		}
		if wc, ok := b.(writeCounter); ok && err == nil {
			q.writes, err = registerWriteCounters(cfg.MeterProvider, wc)
		}
		if err != nil {
			// The gauges' callback reads the backend: a scrape after this
			// would query a closed one.
			if q.gauges != nil {
				_ = q.gauges.Unregister()
			}
			_ = b.Close()
			return nil, fmt.Errorf("queue metrics: %w", err)
		}
	}
	return q, nil
}

// OpenBackend opens the backend alone, without tracing: for tools such as
// queuectl.
func OpenBackend(ctx context.Context, cfg Config) (backend.Backend, error) {
	u, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	switch u.scheme {
	case schemeSQLite:
		sc := cfg.SQLite
		if sc.Logger == nil {
			sc.Logger = cfg.Logger
		}
		if err := sc.ApplyURLParams(u.params); err != nil {
			return nil, fmt.Errorf("queue URL %q: %w", ShownURL(cfg.URL), err)
		}
		b, err := sqlite.Open(ctx, u.path, sc)
		if err != nil {
			return nil, err // not a nil *Backend in a non-nil interface
		}
		return b, nil
	case schemeMemory:
		// In-process only: every service must share this one Backend, so
		// the URL form is for tests that pass the opened Queue around.
		return memory.New(cfg.Logger), nil
	default: // schemePostgres
		pc := cfg.Postgres
		if pc.Logger == nil {
			pc.Logger = cfg.Logger
		}
		b, err := postgres.Open(ctx, cfg.URL, pc)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
}

// ValidateURL reports what is wrong with raw as a queue URL, without
// opening anything: the scheme, a SQLite URL's path and parameters, a
// PostgreSQL URL's syntax and settings. What only opening can tell (a file
// that cannot be created, a server that does not answer) is left to Open.
// Tools that open the queue later, such as the console, check their
// setting with it at start.
func ValidateURL(raw string) error {
	u, err := parseURL(raw)
	if err != nil {
		return err
	}
	switch u.scheme {
	case schemeSQLite:
		var c sqlite.Config
		if err := c.ApplyURLParams(u.params); err != nil {
			return fmt.Errorf("queue URL %q: %w", ShownURL(raw), err)
		}
		// Parameters each valid alone may not go together (an ack delay
		// beyond a third of the lease).
		if err := c.ValidateAsOpened(); err != nil {
			return fmt.Errorf("queue URL %q: %w", ShownURL(raw), err)
		}
	case schemePostgres:
		if err := postgres.ValidateDSN(raw); err != nil {
			return fmt.Errorf("queue URL %q: %w", ShownURL(raw), err)
		}
	}
	return nil
}

// IsInProcess reports whether raw names a queue that lives inside the
// process that opens it (memory://), which no other process can share.
func IsInProcess(raw string) bool {
	u, err := parseURL(raw)
	return err == nil && u.scheme == schemeMemory
}

// The schemes of queue URLs, as parseURL normalises them.
const (
	schemeSQLite   = "sqlite"
	schemePostgres = "postgres"
	schemeMemory   = "memory"
)

// queueURL is a queue URL taken apart.
type queueURL struct {
	scheme string // schemeSQLite, schemePostgres or schemeMemory
	path   string // SQLite: the file
	params string // SQLite: the query string, without "?"
}

// parseURL takes a queue URL apart: sqlite://PATH[?PARAMS] (also
// sqlite3://), postgres://… (also postgresql://), memory://.
func parseURL(raw string) (queueURL, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || rest == "" && !strings.EqualFold(scheme, schemeMemory) {
		return queueURL{}, fmt.Errorf("queue URL %q: want sqlite://PATH, postgres://USER@HOST/DB or memory://", ShownURL(raw))
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		path, params, _ := strings.Cut(rest, "?")
		if path == "" {
			return queueURL{}, fmt.Errorf("queue URL %q: no file path after sqlite://", ShownURL(raw))
		}
		return queueURL{scheme: schemeSQLite, path: path, params: params}, nil
	case "memory":
		return queueURL{scheme: schemeMemory}, nil
	case "postgres", "postgresql":
		return queueURL{scheme: schemePostgres}, nil
	default:
		return queueURL{}, fmt.Errorf("queue URL %q: unsupported scheme %q (want sqlite, postgres or memory)", ShownURL(raw), scheme)
	}
}

// ShownURL returns the queue URL raw as it may be shown in errors, logs
// and pages, since a URL can hold a password and those end up in logs and
// on the console's pages. A SQLite URL is returned as it is: it names a
// file, and Open does not percent-decode its path, so an escaped form
// ("with%20space") would name another file. Any other URL has its password
// masked, in the user information and in a password= query parameter
// (libpq takes one); one that does not parse shows only its scheme, and a
// string that is no URL and could hold credentials shows as "…".
func ShownURL(raw string) string {
	scheme, _, ok := strings.Cut(raw, "://")
	switch {
	case !ok:
		// Not a URL, but possibly credentials: user:password@host, or a
		// libpq key=value string (password=…). A scheme of ours with
		// its slashes missing ("sqlite:", "sqlite:data/queue.db") is
		// shown: it holds no password, and "…" would hide the mistake.
		if scheme, rest, _ := strings.Cut(raw, ":"); isScheme(scheme) && !strings.ContainsAny(rest, "@:=") {
			return raw
		}
		if strings.ContainsAny(raw, "@:=") {
			return "…"
		}
		return raw
	case strings.EqualFold(scheme, "sqlite"), strings.EqualFold(scheme, "sqlite3"):
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return scheme + "://…"
	}
	// libpq also takes the password as a query parameter.
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// isScheme reports whether s names a queue URL scheme parseURL takes.
func isScheme(s string) bool {
	switch strings.ToLower(s) {
	case "sqlite", "sqlite3", "postgres", "postgresql", "memory":
		return true
	}
	return false
}

func (q *Queue) tracingConfig(group string) tracing.Config {
	return tracing.Config{
		TracerProvider: q.cfg.TracerProvider,
		Propagator:     q.cfg.Propagator,
		System:         q.backend.Name(),
		ConsumerGroup:  group,

		MetadataAttributes: q.cfg.SpanAttributes,
	}
}

// Publisher publishes with a producer span per message; put the caller's
// context on each message (msg.SetContext) to make it the span's parent.
// Publish returns once the messages are durably stored.
func (q *Queue) Publisher() message.Publisher { return q.publisher }

// Backend exposes the store, for dead-letter and statistics tools.
func (q *Queue) Backend() backend.Backend { return q.backend }

// Close closes the backend. Close routers first.
func (q *Queue) Close() error { return q.Shutdown(context.Background()) }

// Shutdown is Close, bounded by ctx: what is left to write when ctx ends
// (on SQLite, writes waiting for another process's write lock; on
// PostgreSQL, subscriptions storing their offsets, bookkeeping, publishes
// waiting for the server) is given up, without losing a message: see
// sqlite.Backend.Shutdown and postgres.Backend.Shutdown. A publish given up
// returns an error to its caller; an ack given up leaves its message to be
// delivered again.
func (q *Queue) Shutdown(ctx context.Context) error {
	for _, r := range []metric.Registration{q.gauges, q.writes} {
		if r != nil {
			_ = r.Unregister()
		}
	}
	if b, ok := q.backend.(interface{ Shutdown(context.Context) error }); ok {
		return b.Shutdown(ctx)
	}
	return q.backend.Close()
}
