// Package service wires and runs the order service: its SQLite database
// (event store, projections, outbox, inbox), the shared queue, the reply
// handlers, the outbox forwarder, the step-timeout loop, the order API and
// the loopback admin API.
//
// It is importable (unlike the service's internal packages) so that a test
// can start a whole order service in-process:
//
//	svc, err := service.New(ctx, service.Config{
//		QueueURL: "sqlite://" + dir + "/queue.db", DataDir: dir,
//		HTTPAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
//		StepTimeout: 2 * time.Second,
//	})
//	go svc.Run(ctx)                 // until ctx ends; then a graceful stop
//	base := "http://" + svc.HTTPAddr()
package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/httpdrain"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/pkg/telemetry"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/queue/retry"
	"github.com/orderflow/orderflow/queue/tracing"
	"github.com/orderflow/orderflow/services/order/internal/adapters"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
	"github.com/orderflow/orderflow/services/order/internal/ports"
)

// Name is the service's name: service.name, consumer group, fault prefix.
const Name = "order"

// DBFile is the name of the service's database in its data directory.
const DBFile = "order.db"

// PoisonTopic and PoisonType are where the poison fault publishes its
// unreadable message: a command the order service emits, which inventory
// consumes and dead-letters (order.events has no consumer to do so).
const (
	PoisonTopic = contracts.TopicInventoryCommands
	PoisonType  = contracts.TypeReserveStock
)

// Defaults of Config.
const (
	DefaultQueueURL    = "sqlite://data/queue.db"
	DefaultDataDir     = "data"
	DefaultHTTPAddr    = "127.0.0.1:8080"
	DefaultAdminAddr   = "127.0.0.1:8084"
	DefaultStepTimeout = 30 * time.Second
	// DefaultMaxOpenOrders bounds the orders in flight, so that a backlog
	// cannot grow without end. At 70 orders/s (PostgreSQL on a slow
	// 2-core VM) 2,000 open orders are about 28 s of work, close to the
	// default step timeout: some steps still time out there; a deployment
	// that knows its rate sets it lower (docs/running.md, Tuning).
	DefaultMaxOpenOrders = 2000
	// DefaultConcurrency is how many replies of each topic are handled at
	// once. Concurrent replies share the service's database transactions
	// (the inbox's group commit), so more of them make fewer, larger
	// commits: 16 against 4 gave ×1.09–1.29 orders/s end to end and less
	// CPU per order; 32 no more than 16 (docs/benchmarks.md).
	DefaultConcurrency = 16
)

// retentionInterval is how often processed reply ids and
// Idempotency-Keys are purged (the cadence of inbox.RunRetention, which
// the worker services use).
const retentionInterval = time.Minute

// Config configures the order service. Zero values take the defaults.
type Config struct {
	// QueueURL is the shared queue (sqlite://PATH or postgres://…).
	// Ignored when Queue is set.
	QueueURL string
	// DataDir holds the service's database, DataDir/order.db.
	DataDir string
	// HTTPAddr is the order API's listen address; port 0 picks one (see
	// Service.HTTPAddr).
	HTTPAddr string
	// AdminAddr is the admin API's listen address (health, fault flags,
	// dead letters, queue stats, metrics, projection rebuild); loopback
	// by default. "off" disables it.
	AdminAddr string
	// AllowedHosts are the names both APIs answer to in the Host header
	// besides IP addresses, localhost and the machine's host name
	// (crossorigin.Host): the name other containers call the service by
	// ("order" in Docker Compose).
	AllowedHosts []string
	// CatalogFile is a JSON catalogue pricing the orders; "" is the
	// built-in one (pkg/catalog).
	CatalogFile string
	// StepTimeout is how long the saga waits for inventory, payment or
	// shipping before compensating. Default 30s.
	StepTimeout time.Duration
	// CompensationTimeout is how long it waits for a compensation to be
	// confirmed before sending it again; the wait doubles after each
	// resend, up to domain.MaxCompensationRetryInterval. Default
	// StepTimeout.
	CompensationTimeout time.Duration
	// MaxOpenOrders refuses new orders (503, Retry-After) while that
	// many orders have not ended, so that an overloaded system sheds new
	// work instead of queueing it past the step deadlines, where every
	// timeout adds compensations to the backlog. Keep it below what the
	// system finishes in a step timeout. 0 (as every zero field here)
	// takes the default, DefaultMaxOpenOrders; negative is an error. For
	// no limit, set NoOpenOrderLimit instead.
	MaxOpenOrders int
	// NoOpenOrderLimit turns the open-order limit off (the command line's
	// --max-open-orders 0); MaxOpenOrders must then be 0.
	NoOpenOrderLimit bool
	// TimeoutScanInterval is how often due deadlines are looked for.
	// Default min(1s, StepTimeout/4).
	TimeoutScanInterval time.Duration
	// Concurrency is how many replies of one topic are handled at once.
	// Default DefaultConcurrency.
	Concurrency int
	// MaxAttempts is how often a failing reply is delivered before it is
	// dead-lettered. Default 5.
	MaxAttempts int
	// MaxAbandoned is how many runs alone of a reply may end with the
	// process dying before it is dead-lettered, unhandled (see
	// retry.Config.MaxAbandoned). Default retry.DefaultMaxAbandoned.
	MaxAbandoned int
	// Synchronous is the database's synchronous pragma, NORMAL or FULL.
	Synchronous string
	// ShutdownTimeout bounds the whole graceful stop, shared out among its
	// parts as servicehost.PlanStop says. Default 10s
	// (servicehost.DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
	// DedupRetention is how long processed reply ids (the inbox) and the
	// Idempotency-Keys of POST /orders are remembered: far longer than
	// any redelivery or client retry. A key older than that is free
	// again: it places a new order. Default
	// servicehost.DefaultDedupRetention; at least
	// servicehost.MinDedupRetention.
	DedupRetention time.Duration

	// Logger, TracerProvider, MeterProvider, Propagator and
	// MetricsHandler come from pkg/telemetry in main; tests may leave
	// them nil (discarded, no-op, tracing.DefaultPropagator, none).
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	MetricsHandler http.Handler
	// Faults are the service's fault flags; nil builds a registry of
	// faults.ServiceFlags("order") at their defaults.
	Faults *faults.Registry
	// Queue, when set, is an open shared queue to use instead of opening
	// QueueURL; the service does not close it.
	Queue *queue.Queue
	// Clock is the saga's clock. Default time.Now.
	Clock func() time.Time
}

func (c *Config) setDefaults() {
	if c.QueueURL == "" {
		c.QueueURL = DefaultQueueURL
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.AdminAddr == "" {
		c.AdminAddr = DefaultAdminAddr
	}
	if c.StepTimeout == 0 {
		c.StepTimeout = DefaultStepTimeout
	}
	if c.CompensationTimeout == 0 {
		c.CompensationTimeout = c.StepTimeout
	}
	if c.TimeoutScanInterval == 0 {
		c.TimeoutScanInterval = min(time.Second, max(c.StepTimeout/4, 10*time.Millisecond))
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxOpenOrders == 0 && !c.NoOpenOrderLimit {
		c.MaxOpenOrders = DefaultMaxOpenOrders
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.MaxAbandoned == 0 {
		c.MaxAbandoned = retry.DefaultMaxAbandoned
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = servicehost.DefaultShutdownTimeout
	}
	if c.DedupRetention == 0 {
		c.DedupRetention = servicehost.DefaultDedupRetention
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
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// CheckSynchronous reports a value of Config.Synchronous that the
// database cannot be opened with, for a command line to name its flag.
func CheckSynchronous(s string) error { return adapters.CheckSynchronous(s) }

// Validate reports an unusable config.
func (c Config) Validate() error {
	var errs []error
	if c.StepTimeout < 0 || c.CompensationTimeout < 0 || c.TimeoutScanInterval < 0 || c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("timeouts and intervals must not be negative"))
	}
	if c.MaxOpenOrders < 0 {
		errs = append(errs, fmt.Errorf("max open orders must not be negative, got %d (NoOpenOrderLimit turns the limit off)", c.MaxOpenOrders))
	}
	if c.NoOpenOrderLimit && c.MaxOpenOrders != 0 {
		errs = append(errs, fmt.Errorf("max open orders %d and no open-order limit both set", c.MaxOpenOrders))
	}
	if c.Concurrency < 1 || c.MaxAttempts < 1 || c.MaxAbandoned < 1 {
		errs = append(errs, errors.New("concurrency, max attempts and max abandoned must be at least 1"))
	}
	if err := servicehost.CheckDedupRetention(c.DedupRetention); err != nil {
		errs = append(errs, fmt.Errorf("dedup retention %w", err))
	}
	for name, addr := range map[string]string{"http address": c.HTTPAddr, "admin address": c.AdminAddr} {
		if addr == "off" && name == "admin address" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, addr, err))
		}
	}
	return errors.Join(errs...)
}

// Service is a running order service. New builds it and binds its ports;
// Run serves until its context ends and then stops it.
type Service struct {
	cfg    Config
	logger *slog.Logger

	db       *adapters.DB
	store    *adapters.Store
	app      *app.Application
	inbox    *inbox.Inbox
	q        *queue.Queue
	ownQueue bool
	fwd      *outbox.Forwarder
	router   *queue.Router
	loop     *app.TimeoutLoop
	faults   *faults.Registry
	poison   func(value string) error // the one-shot poison fault

	httpSrv  *http.Server
	requests httpdrain.Tracker // the order API's handlers, for the stop
	httpLn   net.Listener
	admin    *admin.Server
	adminLn  net.Listener
	stopping chan struct{}
	runOnce  sync.Once
}

// New opens the database and the queue, builds the application, the
// handlers and the servers, and binds the listen addresses. Nothing runs
// until Run; call Run (or Close) to release what New opened.
func New(ctx context.Context, cfg Config) (_ *Service, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("order service: %w", err)
	}
	s := &Service{cfg: cfg, logger: cfg.Logger, stopping: make(chan struct{})}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	cat, err := catalog.Load(cfg.CatalogFile)
	if err != nil {
		return nil, err
	}
	if s.faults = cfg.Faults; s.faults == nil {
		if s.faults, err = faults.New(faults.Config{Flags: faults.ServiceFlags(Name), Logger: cfg.Logger}); err != nil {
			return nil, err
		}
	}
	if s.db, err = adapters.OpenDB(ctx, filepath.Join(cfg.DataDir, DBFile), adapters.DBConfig{Synchronous: cfg.Synchronous}); err != nil {
		return nil, err
	}
	// Watermill's info records (schemas initialised, handlers starting, a
	// queued message discarded as a subscriber closes) are start-up and
	// shutdown chatter: logged at debug, as servicehost does for the other
	// services. The queue's own records an operator must see are
	// warnings or errors, never info; its records of retries and dead
	// letters are warnings and errors with the message's trace id.
	wlog := telemetry.NewWatermillLogger(cfg.Logger, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	ob, err := outbox.New(ctx, s.db.Writer, outbox.Config{})
	if err != nil {
		return nil, err
	}
	// No Retention here: runRetention purges the inbox, with the
	// Idempotency-Keys, instead of the inbox's own RunRetention.
	if s.inbox, err = inbox.New(ctx, s.db.Writer, inbox.Config{Logger: wlog}); err != nil {
		return nil, err
	}
	if s.store, err = adapters.NewStore(s.db, ob, s.inbox, cfg.Propagator); err != nil {
		return nil, err
	}
	s.store.BeforeInboxCommit = func(ctx context.Context) { s.faults.CrashPoint(ctx, faults.CrashMidHandler) }

	opts := app.Options{
		Clock: cfg.Clock, TracerProvider: cfg.TracerProvider,
		MeterProvider: cfg.MeterProvider, Logger: cfg.Logger,
	}
	if s.app, err = app.New(app.Config{
		Transactor: s.store, ReadModel: s.store, Deadlines: s.store, Projections: s.store,
		Catalog: cat, Currency: catalog.Currency,
		Timeouts: domain.Timeouts{
			Stock: cfg.StepTimeout, Payment: cfg.StepTimeout, Shipment: cfg.StepTimeout,
			Compensation: cfg.CompensationTimeout,
		},
		MaxOpenOrders: cfg.MaxOpenOrders, // 0 with NoOpenOrderLimit: app.Config's no limit
		Options:       opts,
	}); err != nil {
		return nil, err
	}
	if s.loop, err = app.NewTimeoutLoop(s.app.Commands.FireTimeouts, cfg.TimeoutScanInterval, cfg.Logger); err != nil {
		return nil, err
	}

	plan := servicehost.PlanStop(cfg.ShutdownTimeout)
	if s.q = cfg.Queue; s.q == nil {
		if s.q, err = queue.Open(ctx, servicehost.QueueConfig(cfg.QueueURL, plan, queue.Config{
			Logger: wlog, TracerProvider: cfg.TracerProvider, Propagator: cfg.Propagator,
			MeterProvider: cfg.MeterProvider,
		})); err != nil {
			return nil, fmt.Errorf("open queue: %w", err)
		}
		s.ownQueue = true
	}
	if s.fwd, err = outbox.NewForwarder(s.db.Writer, s.q.Publisher(), outbox.ForwarderConfig{
		Outbox: ob, Logger: wlog, MeterProvider: cfg.MeterProvider, ReadDB: s.db.Reader,
		CloseTimeout: plan.Close - plan.Drain, // the forwarder stops in the stop's last part
	}); err != nil {
		return nil, err
	}
	meter := cfg.MeterProvider.Meter("github.com/orderflow/orderflow/services/order")
	if s.router, err = servicehost.NewRouter(s.q, queue.RouterConfig{
		ConsumerGroup: app.ConsumerGroup,
		Concurrency:   cfg.Concurrency,
		Retry:         retry.Config{MaxAttempts: cfg.MaxAttempts, MaxAbandoned: cfg.MaxAbandoned},
		// Draining the reply handlers is a part of the graceful stop:
		// without this it would wait the router's own default (30s).
		CloseTimeout: plan.Drain,
	}, meter); err != nil {
		return nil, err
	}
	handlers, err := ports.NewMessageHandlers(s.app, s.faults, cfg.Logger, meter)
	if err != nil {
		return nil, err
	}
	handlers.Register(s.router)

	api, err := ports.NewHTTPHandler(ports.HTTPConfig{
		App: s.app, Ready: s.ready, Logger: cfg.Logger,
		TracerProvider: cfg.TracerProvider, Propagator: cfg.Propagator,
	})
	if err != nil {
		return nil, err
	}
	s.httpSrv = ports.NewHTTPServer(cfg.HTTPAddr, cfg.AllowedHosts, s.requests.Handler(api))
	s.httpSrv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("order API: listen: %w", err)
	}
	if cfg.AdminAddr != "off" {
		if s.admin, err = admin.New(admin.Config{
			Service: Name, Addr: cfg.AdminAddr, AllowedHosts: cfg.AllowedHosts, Ready: s.ready, Faults: s.faults,
			Queue: s.q.Backend(), OutboxPending: s.fwd.Pending, Metrics: cfg.MetricsHandler, Routes: s.adminRoutes, Logger: cfg.Logger,
			ShutdownTimeout: plan.Drain,
		}); err != nil {
			return nil, err
		}
		if s.adminLn, err = s.admin.Listen(); err != nil {
			return nil, err
		}
	}
	s.poison = servicehost.PoisonFault(s.faults, cfg.Logger, PoisonTopic, func(ctx context.Context) (string, error) {
		return s.store.EmitPoison(ctx, PoisonTopic, PoisonType)
	})
	if err := s.faults.OnChange(faults.Poison, s.poison); err != nil {
		return nil, err
	}
	return s, nil
}

// HTTPAddr is the address the order API listens on.
func (s *Service) HTTPAddr() string { return s.httpLn.Addr().String() }

// AdminAddr is the address the admin API listens on, "" if disabled.
func (s *Service) AdminAddr() string {
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// Faults returns the service's fault flags.
func (s *Service) Faults() *faults.Registry { return s.faults }

// adminRoutes adds the order service's own admin routes, which take no
// query parameter (admin.CheckQuery).
func (s *Service) adminRoutes(e *echo.Echo) {
	e.POST("/projections/rebuild", func(c echo.Context) error {
		if err := admin.CheckQuery(c.QueryString()); err != nil {
			return err
		}
		n, err := s.app.Commands.RebuildProjections.Handle(c.Request().Context(), app.RebuildProjections{})
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]int{"orders": n})
	})
}

// ready reports whether the service can take traffic: servicehost.Ready,
// and the order database's writes do not currently fail.
func (s *Service) ready(ctx context.Context) error {
	select {
	case <-s.stopping:
		return fmt.Errorf("%w: shutting down", admin.ErrUnavailable)
	default:
	}
	return servicehost.Ready(ctx, s.router, s.db.Ping, s.store, s.q.Backend())
}

// Run serves until ctx ends or a part fails, then stops, the whole stop
// bounded by ShutdownTimeout (see servicehost.PlanStop): at once the order
// API (requests in progress finish), the reply handlers (running handlers
// finish), the timeout loop and the admin API; then the outbox forwarder
// (after forwarding what was committed), and last the queue and the
// database; it logs "order service stopped" last. It returns the first
// failure, if any. A Service runs once.
func (s *Service) Run(ctx context.Context) error {
	ran := false
	s.runOnce.Do(func() { ran = true })
	if !ran {
		return errors.New("order service: already run")
	}
	defer s.Close()

	failed := make(chan error, 8)
	background := context.WithoutCancel(ctx)
	routerCtx, stopRouter := context.WithCancel(background)
	loopCtx, stopLoop := context.WithCancel(background)
	adminCtx, stopAdmin := context.WithCancel(background)
	defer stopRouter()
	defer stopLoop()
	defer stopAdmin()

	var routerWG, loopWG, fwdWG, httpWG, adminWG sync.WaitGroup
	watch := func(name string, stop context.Context, err error) {
		if err != nil {
			failed <- fmt.Errorf("%s: %w", name, err)
		} else if stop.Err() == nil {
			failed <- fmt.Errorf("%s stopped unexpectedly", name)
		}
	}
	fwdWG.Go(func() {
		if err := s.fwd.Run(background); err != nil {
			failed <- fmt.Errorf("outbox forwarder: %w", err)
		}
	})
	routerWG.Go(func() { watch("message router", routerCtx, s.router.Run(routerCtx)) })
	loopWG.Go(func() { watch("timeout loop", loopCtx, s.loop.Run(loopCtx)) })
	loopWG.Go(func() { watch("retention", loopCtx, s.runRetention(loopCtx)) })
	httpWG.Go(func() {
		if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("order API: %w", err)
		}
	})
	if s.admin != nil {
		adminWG.Go(func() { watch("admin API", adminCtx, s.admin.Serve(adminCtx, s.adminLn)) })
	}
	if s.faults.Bool(faults.Poison) { // set by the environment
		if err := s.poison("true"); err != nil {
			s.logger.ErrorContext(ctx, "fault injection: poison from the environment", slog.Any("error", err))
		}
	}
	adminURL := "off"
	if a := s.AdminAddr(); a != "" {
		adminURL = "http://" + a // a URL, as "http" and the other services' addresses
	}
	s.logger.InfoContext(ctx, "order service started",
		"http", "http://"+s.HTTPAddr(), "admin", adminURL, "step_timeout", s.cfg.StepTimeout.String(), "max_open_orders", s.cfg.MaxOpenOrders) // 0: no limit, as the flag says

	var runErr error
	select {
	case <-ctx.Done():
		s.logger.Info("shutting down", "shutdown_timeout", s.cfg.ShutdownTimeout.String())
	case runErr = <-failed:
		s.logger.Error("shutting down after a failure", "error", runErr)
	}
	close(s.stopping)
	plan := servicehost.PlanStop(s.cfg.ShutdownTimeout)
	closeCtx, cancelClose := plan.CloseContext(time.Now())
	defer cancelClose()

	// 1. At once, as they do not depend on each other: the order API
	// takes no new orders and its requests in progress finish; the reply
	// handlers take no new reply and the running ones finish (both within
	// plan.Drain); the timeout loop and the admin API stop.
	stopRouter()
	stopLoop()
	stopAdmin()
	sctx, cancel := context.WithTimeout(background, plan.Drain)
	// Requests still open after the drain are cut off. A client that
	// stalled while sending its body is no reason for the stop to fail (its
	// handler cannot have acted on an order it has not read); a handler
	// still at work is: it goes on while the stages below close what it
	// uses.
	stalled, err := s.requests.Shutdown(sctx, s.httpSrv)
	if stalled {
		s.logger.Warn("order API: clients still sending their requests when the shutdown's wait ended; closed their connections", "waited", plan.Drain.String())
	}
	if err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("order API: shutdown: %w", err))
	}
	cancel()
	httpWG.Wait()
	routerWG.Wait()
	loopWG.Wait()
	adminWG.Wait()
	// 2. The forwarder relays what was committed, then stops.
	servicehost.FlushOutbox(closeCtx, s.fwd, s.logger)
	if err := s.fwd.Shutdown(closeCtx); err != nil {
		runErr = errors.Join(runErr, err)
	}
	fwdWG.Wait()

	close(failed)
	for err := range failed {
		if !errors.Is(err, runErr) {
			s.logger.Warn("stopped with an error", "error", err)
		}
	}
	// 3. The queue and the database.
	s.close(closeCtx)
	s.logger.Info("order service stopped")
	return runErr
}

// runRetention purges, every retentionInterval until ctx ends, what is
// older than DedupRetention: processed reply ids and Idempotency-Keys.
func (s *Service) runRetention(ctx context.Context) error {
	t := time.NewTicker(retentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.purgeExpired(ctx, time.Now())
	}
}

// purgeExpired deletes the reply ids processed and the Idempotency-Keys
// created more than DedupRetention before now. A failure is logged; the next
// round retries.
func (s *Service) purgeExpired(ctx context.Context, now time.Time) {
	cutoff := now.Add(-s.cfg.DedupRetention)
	if n, err := s.inbox.PurgeProcessedBefore(ctx, cutoff); err != nil {
		if ctx.Err() == nil {
			s.logger.ErrorContext(ctx, "cannot purge processed reply ids", "error", err)
		}
	} else if n > 0 {
		s.logger.DebugContext(ctx, "purged processed reply ids", "deleted", n)
	}
	if n, err := s.store.PurgeIdempotencyKeysBefore(ctx, cutoff); err != nil {
		if ctx.Err() == nil {
			s.logger.ErrorContext(ctx, "cannot purge idempotency keys", "error", err)
		}
	} else if n > 0 {
		s.logger.DebugContext(ctx, "purged idempotency keys", "deleted", n)
	}
}

// Close releases what New opened: listeners, the message router, the
// forwarder, the queue (if the service opened it), the inbox and the
// database. Run calls it; call it yourself only for a Service that never
// ran.
func (s *Service) Close() { s.close(context.Background()) }

// close is Close, giving up on what the queue has left to write when ctx
// ends (queue.Queue.Shutdown).
func (s *Service) close(ctx context.Context) {
	for _, ln := range []net.Listener{s.httpLn, s.adminLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if s.router != nil {
		// Its subscriber works from the start (SQLite's extends leases);
		// a queue the caller owns outlives this Service. After Run, a
		// no-op.
		if err := s.router.Close(); err != nil {
			s.logger.Warn("close message router", "error", err)
		}
	}
	if s.fwd != nil {
		_ = s.fwd.Shutdown(ctx)
	}
	if s.q != nil && s.ownQueue {
		if err := s.q.Shutdown(ctx); err != nil {
			s.logger.Warn("close queue", "error", err)
		}
	}
	s.q = nil
	if s.app != nil {
		_ = s.app.Close() // before the database its gauge reads
		s.app = nil
	}
	if s.inbox != nil {
		// Its statement is prepared on the database closed below; a
		// second Close does nothing.
		if err := s.inbox.Close(); err != nil {
			s.logger.Warn("close inbox", "error", err)
		}
	}
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			s.logger.Warn("close database", "error", err)
		}
		s.db = nil
	}
}

// RebuildProjections recomputes the order list, the status counts and the
// deadline index of the database in dataDir from its event store, and
// returns the number of orders. Run it while the service is stopped (or
// use the admin API's POST /projections/rebuild on a running one). A data
// directory without DBFile is an error: the database is not created (a
// mistyped --data-dir would otherwise "rebuild" an empty new one).
func RebuildProjections(ctx context.Context, dataDir string) (int, error) {
	if strings.TrimSpace(dataDir) == "" {
		dataDir = DefaultDataDir
	}
	path := filepath.Join(dataDir, DBFile)
	if fi, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("rebuild projections: no order database %s (is the data directory right?)", path)
		}
		return 0, fmt.Errorf("rebuild projections: %w", err)
	} else if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("rebuild projections: %s is not a database file", path)
	}
	db, err := adapters.OpenDB(ctx, path, adapters.DBConfig{})
	if err != nil {
		return 0, err
	}
	n, err := adapters.RebuildProjections(ctx, db)
	return n, errors.Join(err, db.Close())
}
