package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/telemetry"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/queue/retry"
	"github.com/orderflow/orderflow/services/shipping/internal/adapters"
	"github.com/orderflow/orderflow/services/shipping/internal/app"
	"github.com/orderflow/orderflow/services/shipping/internal/ports"
)

// inboxRetention is how long processed message ids are remembered: far
// longer than any redelivery (retries, dead-letter replays).
const inboxRetention = 7 * 24 * time.Hour

// poisonTopic and poisonType are where the poison fault publishes.
const (
	poisonTopic = contracts.TopicShippingEvents
	poisonType  = contracts.TypeShipmentScheduled
)

// service is the running shipping service: its database, the queue, the handlers,
// the outbox forwarder and the admin server. newService builds and starts
// listening; run serves until ctx ends and then stops everything in order.
type service struct {
	logger *slog.Logger
	db     *sql.DB
	q      *queue.Queue
	fwd    *outbox.Forwarder
	inbox  *inbox.Inbox
	router *queue.Router
	admin  *admin.Server
	ln     net.Listener
	uow    *adapters.UnitOfWork
	faults *faults.Registry
}

func newService(ctx context.Context, cfg config, tel *telemetry.Telemetry, reg *faults.Registry) (_ *service, err error) {
	s := &service{logger: tel.Logger, faults: reg}
	defer func() {
		if err != nil {
			if s.ln != nil {
				_ = s.ln.Close()
			}
			if s.fwd != nil {
				_ = s.fwd.Close()
			}
			s.close()
		}
	}()
	if s.db, err = adapters.OpenDB(ctx, cfg.dbPath()); err != nil {
		return nil, err
	}
	if err := adapters.Migrate(ctx, s.db); err != nil {
		return nil, err
	}
	// Watermill's info records (handlers starting, schemas created) are
	// start-up chatter: log them at debug. Retries and dead letters are
	// logged by the handlers themselves.
	wlog := watermill.NewSlogLoggerWithLevelMapping(tel.Logger, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	if s.q, err = queue.Open(ctx, queue.Config{URL: cfg.QueueURL, Logger: wlog,
		TracerProvider: tel.TracerProvider, Propagator: tel.Propagator}); err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	ob, err := outbox.New(ctx, s.db, outbox.Config{})
	if err != nil {
		return nil, err
	}
	if s.fwd, err = outbox.NewForwarder(s.db, s.q.Publisher(), outbox.ForwarderConfig{Outbox: ob, Logger: wlog}); err != nil {
		return nil, err
	}
	if s.inbox, err = inbox.New(ctx, s.db, inbox.Config{Retention: inboxRetention, Logger: wlog}); err != nil {
		return nil, err
	}
	if s.uow, err = adapters.NewUnitOfWork(adapters.UnitOfWorkConfig{
		DB: s.db, Inbox: s.inbox, Outbox: ob, ConsumerGroup: serviceName, Propagator: tel.Propagator,
		BeforeCommit: func() { reg.CrashPoint(faults.CrashMidHandler) },
	}); err != nil {
		return nil, err
	}
	application, err := app.New(s.uow, adapters.NewSimulatedCarrier(reg), adapters.NewReadModel(s.db))
	if err != nil {
		return nil, err
	}

	meter := tel.MeterProvider.Meter("github.com/orderflow/orderflow/services/" + serviceName)
	retries, _ := meter.Int64Counter("orderflow.messages.retried", metric.WithDescription("Failed messages scheduled for another attempt."))
	dead, _ := meter.Int64Counter("orderflow.messages.dead_lettered", metric.WithDescription("Messages moved to the dead-letter queue."))
	if s.router, err = s.q.NewRouter(queue.RouterConfig{
		ConsumerGroup: serviceName,
		Concurrency:   cfg.Concurrency,
		Retry: retry.Config{
			MaxAttempts: cfg.MaxAttempts,
			OnRetry: func(topic string) {
				retries.Add(context.Background(), 1, metric.WithAttributes(attribute.String("topic", topic)))
			},
			OnDeadLetter: func(topic string) {
				dead.Add(context.Background(), 1, metric.WithAttributes(attribute.String("topic", topic)))
			},
		},
	}); err != nil {
		return nil, err
	}
	handlers, err := ports.NewMessageHandlers(application, reg, tel.Logger, meter)
	if err != nil {
		return nil, err
	}
	handlers.Register(s.router)

	if s.admin, err = admin.New(admin.Config{
		Service: serviceName,
		Addr:    cfg.HTTPAddr,
		Ready:   s.ready,
		Faults:  reg,
		Queue:   s.q.Backend(),
		Metrics: tel.MetricsHandler,
		Routes:  ports.NewHTTP(application).Mount,
		Logger:  tel.Logger,
	}); err != nil {
		return nil, err
	}
	if s.ln, err = s.admin.Listen(); err != nil {
		return nil, err
	}
	if err := reg.OnChange(faults.Poison, s.poison); err != nil {
		return nil, err
	}
	return s, nil
}

// addr is where the admin server listens.
func (s *service) addr() string { return s.ln.Addr().String() }

// ready reports whether the handlers run and both databases answer.
func (s *service) ready(ctx context.Context) error {
	select {
	case <-s.router.Running():
	default:
		return fmt.Errorf("%w: message handlers are not running", admin.ErrUnavailable)
	}
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: database: %v", admin.ErrUnavailable, err)
	}
	if _, err := s.q.Backend().Inspector().Topics(ctx); err != nil {
		return fmt.Errorf("%w: queue: %v", admin.ErrUnavailable, err)
	}
	return nil
}

// poison is the one-shot poison fault: on true it stores one unreadable
// message for poisonTopic and switches the flag back off.
func (s *service) poison(value string) {
	if value != "true" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := s.uow.EmitPoison(ctx, poisonTopic, poisonType)
	if err != nil {
		s.logger.ErrorContext(ctx, "fault injection: poison message not published", slog.Any("error", err))
	} else {
		s.logger.WarnContext(ctx, "fault injection: poison message published",
			slog.String("topic", poisonTopic), slog.String("message_id", id))
	}
	if err := s.faults.Set(faults.Poison, "false"); err != nil {
		s.logger.ErrorContext(ctx, "fault injection: reset poison", slog.Any("error", err))
	}
}

// run serves until ctx ends or a part fails, then shuts down in order:
// the HTTP server, the router (which lets running handlers finish), the
// outbox forwarder (after forwarding what the last handlers committed),
// then the queue and the database.
func (s *service) run(ctx context.Context) error {
	defer s.close()
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
		if err := s.fwd.Run(background); err != nil {
			failed <- fmt.Errorf("outbox forwarder: %w", err)
		}
	})
	start("message router", routerCtx, s.router.Run)
	start("inbox retention", retentionCtx, func(ctx context.Context) error { return s.inbox.RunRetention(ctx) })
	start("admin server", httpCtx, func(ctx context.Context) error { return s.admin.Serve(ctx, s.ln) })
	if s.faults.Bool(faults.Poison) { // set by the environment
		s.poison("true")
	}
	s.logger.InfoContext(ctx, "service started", slog.String("admin", "http://"+s.addr()))

	var runErr error
	select {
	case <-ctx.Done():
		s.logger.Info("shutting down")
	case runErr = <-failed:
		s.logger.Error("shutting down after a failure", slog.Any("error", runErr))
	}
	stopHTTP()
	stopRouter()
	stopRetention()
	wg.Wait()
	s.flushOutbox(5 * time.Second)
	if err := s.fwd.Close(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	fwdDone.Wait()
	close(failed)
	for err := range failed {
		s.logger.Warn("stopped with an error", slog.Any("error", err))
	}
	s.logger.Info("stopped")
	return runErr
}

// flushOutbox waits (up to timeout) until the forwarder has relayed every
// committed message.
func (s *service) flushOutbox(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		n, err := s.fwd.Pending(ctx)
		if err != nil || n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			s.logger.Warn("outbox not empty at shutdown; the rest is forwarded after the restart", slog.Int64("pending", n))
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// close releases the queue and the database.
func (s *service) close() {
	if s.q != nil {
		if err := s.q.Close(); err != nil {
			s.logger.Warn("close queue", slog.Any("error", err))
		}
		s.q = nil
	}
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			s.logger.Warn("close database", slog.Any("error", err))
		}
		s.db = nil
	}
}
