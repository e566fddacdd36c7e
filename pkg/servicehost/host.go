// Package servicehost runs what every orderflow worker service (inventory,
// payment, shipping) is made of around its own application: its SQLite
// database, the shared queue, the inbox and the outbox, the outbox
// forwarder, the message router with retries and dead letters, the
// loopback admin server (health, fault flags, dead letters, metrics and the
// service's own routes) and the poison fault; and it stops them in order.
//
// A service describes itself with a Spec (its name, default address,
// tables and the wiring of its application) and takes a Config from its
// caller:
//
//	h, err := servicehost.Open(ctx, servicehost.Spec{
//		Name: "payment", DefaultHTTPAddr: "127.0.0.1:8082",
//		PoisonTopic: contracts.TopicPaymentEvents, PoisonType: contracts.TypePaymentCharged,
//		Migrate: adapters.Migrate,
//		Wire: func(ctx context.Context, p servicehost.Parts) (func(*echo.Echo), error) {
//			… build the application on p.UnitOfWork and p.DB, register its
//			handlers on p.Router, return its admin routes …
//		},
//	}, cfg)
//	err = h.Run(ctx) // until ctx ends; then a graceful stop
//
// The parts Host is built from (NewRouter, Ready, PoisonFault,
// FlushOutbox) are exported for services that wire themselves.
package servicehost

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/pkg/telemetry"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/queue/retry"
	"github.com/orderflow/orderflow/queue/tracing"
)

// Defaults of Config.
const (
	DefaultQueueURL    = "sqlite://data/queue.db"
	DefaultDataDir     = "data"
	DefaultConcurrency = 4
	DefaultMaxAttempts = 5
	// DefaultShutdownTimeout is the order service's default too: well
	// inside the 15 s that devrun and Docker Compose wait before they
	// kill a process.
	DefaultShutdownTimeout = 10 * time.Second
)

// Bounds of Config.DedupRetention, the order service's too.
const (
	// DefaultDedupRetention is far longer than any redelivery or client
	// retry: what a week of traffic leaves in the inbox is what the
	// default costs (about 50 bytes a message handled).
	DefaultDedupRetention = 7 * 24 * time.Hour
	// MinDedupRetention is the shortest retention taken. The duplicates
	// an inbox drops come within minutes (a lease that expired, a retry
	// at its longest backoff, the outbox forwarding a batch again after
	// a crash); a dead letter replayed later was, as a rule, never
	// handled, so its id is not in the inbox anyway (but on PostgreSQL a
	// handler that outlived its ack deadline may have committed: replay
	// within the retention). Below an hour, a slow redelivery could find
	// its id forgotten and be handled twice.
	MinDedupRetention = time.Hour
)

// CheckDedupRetention reports a dedup retention under MinDedupRetention,
// for Config.Validate, the order service's and the command lines (which
// name their flag before it).
func CheckDedupRetention(d time.Duration) error {
	if d >= MinDedupRetention {
		return nil
	}
	return fmt.Errorf("must be at least %s, got %s: a redelivery that came later would be handled twice", MinDedupRetention, d)
}

// Config is what the caller of a worker service chooses. Zero values take
// the defaults.
type Config struct {
	// QueueURL is the shared queue: sqlite://PATH, postgres://… or
	// memory://. Default DefaultQueueURL. Ignored when Queue is set.
	QueueURL string
	// Queue, when set, is an open shared queue to use instead of opening
	// QueueURL; the service does not close it. Several services of one
	// process share a queue this way (a memory:// queue must be shared).
	Queue *queue.Queue
	// DataDir holds the service's own database, DataDir/NAME.db. Default
	// DefaultDataDir.
	DataDir string
	// HTTPAddr is the admin and state HTTP address, loopback by default
	// (Spec.DefaultHTTPAddr); port 0 picks one (see Host.HTTPAddr).
	HTTPAddr string
	// AllowedHosts are the names the admin server answers to in the Host
	// header besides IP addresses, localhost and the machine's host name
	// (admin.Config.AllowedHosts): the name other containers call the
	// service by.
	AllowedHosts []string
	// Concurrency is how many commands are handled at once. Default
	// DefaultConcurrency.
	Concurrency int
	// MaxAttempts is how often a failing command is delivered before it
	// is dead-lettered. Default DefaultMaxAttempts.
	MaxAttempts int
	// MaxAbandoned is how many runs alone of a command may end with the
	// process dying before it is dead-lettered, unhandled (see
	// retry.Config.MaxAbandoned). Default retry.DefaultMaxAbandoned.
	MaxAbandoned int
	// ShutdownTimeout bounds the whole graceful stop, shared out among
	// its parts as PlanStop says: the admin server's requests and the
	// running handlers, the outbox's last forward, the closing of the
	// queue and the database. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// DedupRetention is how long the ids of the messages handled (the
	// inbox) and a service's own Idempotency-Keys (Parts.DedupRetention)
	// are remembered: a duplicate that comes later is handled again.
	// Default DefaultDedupRetention; at least MinDedupRetention.
	DedupRetention time.Duration

	// Logger, TracerProvider, MeterProvider, Propagator and
	// MetricsHandler come from pkg/telemetry in main; tests may leave
	// them nil (discarded, no-op, W3C, none).
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	MetricsHandler http.Handler
	// Faults are the service's fault flags; nil builds a registry of
	// faults.ServiceFlags(NAME) at their defaults.
	Faults *faults.Registry
}

func (c *Config) setDefaults(s Spec) {
	if c.QueueURL == "" {
		c.QueueURL = DefaultQueueURL
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = s.DefaultHTTPAddr
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxAbandoned == 0 {
		c.MaxAbandoned = retry.DefaultMaxAbandoned
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.DedupRetention == 0 {
		c.DedupRetention = DefaultDedupRetention
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = tracenoop.NewTracerProvider()
	}
	if c.MeterProvider == nil {
		c.MeterProvider = metricnoop.NewMeterProvider()
	}
	if c.Propagator == nil {
		c.Propagator = tracing.DefaultPropagator()
	}
}

// Validate reports an unusable config (after defaults).
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 1 || c.MaxAttempts < 1 || c.MaxAbandoned < 1 {
		errs = append(errs, errors.New("concurrency, max attempts and max abandoned must be at least 1"))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("shutdown timeout must not be negative"))
	}
	if err := CheckDedupRetention(c.DedupRetention); err != nil {
		errs = append(errs, fmt.Errorf("dedup retention %w", err))
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("http address %q: %w", c.HTTPAddr, err))
	}
	return errors.Join(errs...)
}

// Spec is what a worker service is: set by the service's own package.
type Spec struct {
	// Name is the service's name: service.name of its meter, its consumer
	// group, its fault flags, its database file NAME.db.
	Name string
	// DefaultHTTPAddr is the default of Config.HTTPAddr.
	DefaultHTTPAddr string
	// PoisonTopic and PoisonType are where the poison fault publishes: a
	// topic the service emits and a message type of it.
	PoisonTopic, PoisonType string
	// Migrate creates (and seeds) the service's tables in its database;
	// the inbox and the outbox create theirs. Optional.
	Migrate func(ctx context.Context, db *sql.DB) error
	// Wire builds the service's application on p, registers its message
	// handlers on p.Router and returns its own routes for the admin
	// server (nil for none). Required.
	Wire func(ctx context.Context, p Parts) (routes func(e *echo.Echo), err error)
}

// Validate reports an incomplete spec.
func (s Spec) Validate() error {
	if s.Name == "" || s.DefaultHTTPAddr == "" || s.Wire == nil {
		return errors.New("service spec: name, default address and wire are required")
	}
	if s.PoisonTopic == "" || s.PoisonType == "" {
		return errors.New("service spec: poison topic and type are required")
	}
	return nil
}

// Parts are what Spec.Wire builds a service's application from.
type Parts struct {
	// DB is the service's own database, for its store and read model.
	DB *sql.DB
	// UnitOfWork configures servicedb.NewUnitOfWork: the database, the
	// inbox and the outbox, the service's consumer group, the propagator
	// and the crash_mid_handler fault point.
	UnitOfWork servicedb.UnitOfWorkConfig
	// Router takes the service's message handlers.
	Router *queue.Router
	Faults *faults.Registry
	Logger *slog.Logger
	// Meter is the service's meter, for its handlers' instruments.
	Meter metric.Meter
	// DedupRetention is Config.DedupRetention: how long the service keeps
	// the Idempotency-Keys of its own API, as the inbox keeps message ids.
	DedupRetention time.Duration
}

// Host is a worker service ready to run. Open builds it and binds its
// address; Run serves until its context ends and then stops it.
type Host struct {
	spec     Spec
	cfg      Config
	logger   *slog.Logger
	faults   *faults.Registry
	db       *sql.DB
	q        *queue.Queue
	ownQueue bool
	fwd      *outbox.Forwarder
	inbox    *inbox.Inbox
	router   *queue.Router
	admin    *admin.Server
	ln       net.Listener
	poison   func(value string) error
	ran      atomic.Bool
	// closed is set by Close: the fault registry outlives the Host (a
	// caller may hold it, e2e/inprocess hands it out after a stop), and a
	// poison set on it then must fail, not emit into a closed database.
	closed atomic.Bool
}

// Open opens the service's database and the queue, wires the service's
// application through spec.Wire and binds the admin address. Nothing runs
// until Run; call Run (or Close) to release what Open opened.
func Open(ctx context.Context, spec Spec, cfg Config) (_ *Host, err error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults(spec)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s service: %w", spec.Name, err)
	}
	h := &Host{spec: spec, cfg: cfg, logger: cfg.Logger, faults: cfg.Faults}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	if h.faults == nil {
		if h.faults, err = faults.New(faults.Config{Flags: faults.ServiceFlags(spec.Name), Logger: cfg.Logger}); err != nil {
			return nil, err
		}
	}
	if h.db, err = servicedb.Open(ctx, filepath.Join(cfg.DataDir, spec.Name+".db")); err != nil {
		return nil, err
	}
	if spec.Migrate != nil {
		if err := spec.Migrate(ctx, h.db); err != nil {
			return nil, err
		}
	}
	// Watermill's info records (handlers starting, schemas created) are
	// start-up chatter: log them at debug. The queue's own records an
	// operator must see (a batch lost, an owner lock lost, forwarding
	// waiting for the queue, a message run beside a hung handler, a
	// failed bookkeeping write) are warnings or errors, never info. Its
	// records of retries (warnings) and dead letters (errors) are written
	// with the message's context, so they carry its trace id
	// (retry.ContextLogger).
	wlog := telemetry.NewWatermillLogger(cfg.Logger, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	plan := PlanStop(cfg.ShutdownTimeout)
	if h.q = cfg.Queue; h.q == nil {
		if h.q, err = queue.Open(ctx, QueueConfig(cfg.QueueURL, plan, queue.Config{Logger: wlog,
			TracerProvider: cfg.TracerProvider, Propagator: cfg.Propagator, MeterProvider: cfg.MeterProvider})); err != nil {
			return nil, fmt.Errorf("open queue: %w", err)
		}
		h.ownQueue = true
	}
	ob, err := outbox.New(ctx, h.db, outbox.Config{})
	if err != nil {
		return nil, err
	}
	if h.fwd, err = outbox.NewForwarder(h.db, h.q.Publisher(), outbox.ForwarderConfig{
		Outbox: ob, Logger: wlog, CloseTimeout: plan.Close - plan.Drain, MeterProvider: cfg.MeterProvider,
	}); err != nil {
		return nil, err
	}
	if h.inbox, err = inbox.New(ctx, h.db, inbox.Config{Retention: cfg.DedupRetention, Logger: wlog}); err != nil {
		return nil, err
	}
	meter := cfg.MeterProvider.Meter("github.com/orderflow/orderflow/services/" + spec.Name)
	if h.router, err = NewRouter(h.q, queue.RouterConfig{
		ConsumerGroup: spec.Name,
		Concurrency:   cfg.Concurrency,
		Retry:         retry.Config{MaxAttempts: cfg.MaxAttempts, MaxAbandoned: cfg.MaxAbandoned},
		// Without it the router waits its own default (30s) for handlers.
		CloseTimeout: plan.Drain,
	}, meter); err != nil {
		return nil, err
	}
	routes, err := spec.Wire(ctx, Parts{
		DB: h.db,
		UnitOfWork: servicedb.UnitOfWorkConfig{
			DB: h.db, Inbox: h.inbox, Outbox: ob, ConsumerGroup: spec.Name, Propagator: cfg.Propagator,
			BeforeCommit: func(ctx context.Context) { h.faults.CrashPoint(ctx, faults.CrashMidHandler) },
		},
		Router: h.router,
		Faults: h.faults,
		Logger: cfg.Logger,
		Meter:  meter,

		DedupRetention: cfg.DedupRetention,
	})
	if err != nil {
		return nil, err
	}
	if h.admin, err = admin.New(admin.Config{
		Service:         spec.Name,
		Addr:            cfg.HTTPAddr,
		AllowedHosts:    cfg.AllowedHosts,
		Ready:           h.ready,
		Faults:          h.faults,
		Queue:           h.q.Backend(),
		OutboxPending:   h.fwd.Pending,
		Metrics:         cfg.MetricsHandler,
		Routes:          routes,
		Logger:          cfg.Logger,
		ShutdownTimeout: plan.Drain,
	}); err != nil {
		return nil, err
	}
	if h.ln, err = h.admin.Listen(); err != nil {
		return nil, err
	}
	db := h.db // Close sets h.db to nil
	h.poison = PoisonFault(h.faults, cfg.Logger, spec.PoisonTopic, func(ctx context.Context) (string, error) {
		if h.closed.Load() {
			return "", fmt.Errorf("%w: %s service stopped", admin.ErrUnavailable, spec.Name)
		}
		return servicedb.EmitPoison(ctx, db, ob, spec.PoisonTopic, spec.PoisonType)
	})
	if err := h.faults.OnChange(faults.Poison, h.poison); err != nil {
		return nil, err
	}
	return h, nil
}

// HTTPAddr is the address the admin and state HTTP server listens on.
func (h *Host) HTTPAddr() string { return h.ln.Addr().String() }

// Faults returns the service's fault flags.
func (h *Host) Faults() *faults.Registry { return h.faults }

// Running is closed once the service's message handlers are subscribed.
func (h *Host) Running() <-chan struct{} { return h.router.Running() }

// ready reports whether the handlers run and both databases answer and
// take writes.
func (h *Host) ready(ctx context.Context) error {
	return Ready(ctx, h.router, h.db.PingContext, h.inbox, h.q.Backend())
}

// Run serves until ctx ends or a part fails, then shuts down in order,
// the whole stop bounded by ShutdownTimeout (see PlanStop): the HTTP
// server and the router (which lets running handlers finish), the outbox
// forwarder (after forwarding what the last handlers committed), then the
// queue (if the service opened it) and the database; it logs "stopped"
// last. It returns the first failure, if any. A Host runs once.
func (h *Host) Run(ctx context.Context) error {
	if h.ran.Swap(true) {
		return fmt.Errorf("%s service: already run", h.spec.Name)
	}
	defer h.Close() // a no-op once the stop below closed everything
	failed := make(chan error, 4)
	var wg sync.WaitGroup
	start := func(name string, stop context.Context, fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(stop); err != nil {
				failed <- fmt.Errorf("%s: %w", name, err)
			} else if stop.Err() == nil {
				failed <- fmt.Errorf("%s stopped unexpectedly", name)
			}
		})
	}
	background := context.WithoutCancel(ctx)
	httpCtx, stopHTTP := context.WithCancel(background)
	routerCtx, stopRouter := context.WithCancel(background)
	retentionCtx, stopRetention := context.WithCancel(background)
	defer stopHTTP()
	defer stopRouter()
	defer stopRetention()

	var fwdDone sync.WaitGroup
	fwdDone.Go(func() {
		if err := h.fwd.Run(background); err != nil {
			failed <- fmt.Errorf("outbox forwarder: %w", err)
		}
	})
	start("message router", routerCtx, h.router.Run)
	start("inbox retention", retentionCtx, h.inbox.RunRetention)
	start("admin server", httpCtx, func(ctx context.Context) error { return h.admin.Serve(ctx, h.ln) })
	if h.faults.Bool(faults.Poison) { // set by the environment
		if err := h.poison("true"); err != nil {
			h.logger.ErrorContext(ctx, "fault injection: poison from the environment", slog.Any("error", err))
		}
	}
	h.logger.InfoContext(ctx, "service started", slog.String("admin", "http://"+h.HTTPAddr()))

	var runErr error
	select {
	case <-ctx.Done():
		h.logger.Info("shutting down", slog.String("shutdown_timeout", h.cfg.ShutdownTimeout.String()))
	case runErr = <-failed:
		h.logger.Error("shutting down after a failure", slog.Any("error", runErr))
	}
	closeCtx, cancel := PlanStop(h.cfg.ShutdownTimeout).CloseContext(time.Now())
	defer cancel()
	stopHTTP()
	stopRouter()
	stopRetention()
	wg.Wait()
	FlushOutbox(closeCtx, h.fwd, h.logger)
	if err := h.fwd.Shutdown(closeCtx); err != nil {
		runErr = errors.Join(runErr, err)
	}
	fwdDone.Wait()
	close(failed)
	for err := range failed {
		h.logger.Warn("stopped with an error", slog.Any("error", err))
	}
	h.close(closeCtx)
	h.logger.Info("stopped")
	return runErr
}

// Close releases what Open opened: the listener, the message router, the
// forwarder, the queue (if the service opened it), the inbox and the
// database. Run calls it; call it
// yourself only for a Host that never ran.
func (h *Host) Close() { h.close(context.Background()) }

// close is Close, giving up on what the queue has left to write when ctx
// ends (queue.Queue.Shutdown).
func (h *Host) close(ctx context.Context) {
	h.closed.Store(true)
	if h.ln != nil {
		_ = h.ln.Close()
	}
	if h.router != nil {
		// Its subscriber works from the start (SQLite's extends leases);
		// a queue the caller owns outlives this Host. After Run, a no-op.
		if err := h.router.Close(); err != nil {
			h.logger.Warn("close message router", slog.Any("error", err))
		}
	}
	if h.fwd != nil {
		_ = h.fwd.Shutdown(ctx)
	}
	if h.q != nil && h.ownQueue {
		if err := h.q.Shutdown(ctx); err != nil {
			h.logger.Warn("close queue", slog.Any("error", err))
		}
	}
	h.q = nil
	if h.inbox != nil {
		// Its statement is prepared on the database closed below. Kept,
		// not set to nil: a second Close does nothing, and a readiness
		// check still running may use it (it works after Close).
		if err := h.inbox.Close(); err != nil {
			h.logger.Warn("close inbox", slog.Any("error", err))
		}
	}
	if h.db != nil {
		if err := h.db.Close(); err != nil {
			h.logger.Warn("close database", slog.Any("error", err))
		}
		h.db = nil
	}
}
