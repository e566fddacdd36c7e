// Package admin is the small operations HTTP server every orderflow service
// mounts, bound to loopback by default:
//
//	GET    /healthz                 liveness: 200 while the process serves
//	GET    /readyz                  readiness: Config.Ready, 503 when it fails
//	GET    /faults                  every fault flag (see package faults)
//	GET    /faults/{name}           one flag
//	PUT    /faults/{name}           set it: {"value": "0.5"} (POST too)
//	DELETE /faults/{name}           back to its default
//	GET    /dlq                     dead letters (?topic= &group= &limit=)
//	GET    /dlq/{id}                one dead letter
//	POST   /dlq/{id}/replay         back to its topic, for its group only
//	POST   /dlq/replay              replay all (?topic= &group=, or the same in a JSON body)
//	DELETE /dlq                     purge (?topic= &group=, or the same in a JSON body)
//	GET    /queue/stats             topics, consumer groups, depth and lag
//	GET    /outbox                  {"pending": N}: messages this service committed and has not forwarded yet
//	GET    /metrics                 Prometheus metrics (Config.Metrics; ?name[]= once per family to keep)
//	GET    /debug/pprof/…           Go's profiles (net/http/pprof): go tool pprof http://ADDR/debug/pprof/profile?seconds=30
//
// plus whatever the service adds with Config.Routes (GET /state, …).
// A query parameter a route does not take is a 400 naming it (CheckQuery):
// of the routes above, only the filters of the dead letters' lists, replays
// and purges, /metrics' name[] and the profiles' own (?seconds=) are taken.
// JSON bodies are read by the order API's reader, jsonbody.Decode
// (DecodeJSON): the two APIs take and refuse the same bodies, in the same
// words.
// Errors are RFC 9457 application/problem+json, mapped from Go errors in
// one place (StatusOf).
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/orderflow/orderflow/pkg/crossorigin"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/headmethod"
	"github.com/orderflow/orderflow/pkg/httpdrain"
	"github.com/orderflow/orderflow/pkg/readiness"
	"github.com/orderflow/orderflow/queue/backend"
)

// DefaultAddr is where the admin server listens when Config.Addr is empty:
// loopback only, any free port.
const DefaultAddr = "127.0.0.1:0"

// Config configures New. Only Service is required; every optional part
// left nil leaves its routes out (they answer 404).
type Config struct {
	// Service is the service's name, reported by /healthz.
	Service string
	// Addr is the listen address. Default DefaultAddr. Binding to a
	// non-loopback address is allowed but logged: these routes can crash
	// the process and purge dead letters.
	Addr string
	// AllowedHosts are the names, besides IP addresses, localhost and the
	// machine's host name, that the server answers to in the Host header
	// (crossorigin.Host), wherever it listens: the name other containers
	// reach it by ("payment" in Docker Compose). Others get 421.
	AllowedHosts []string
	// Ready reports whether the service can do its work (database and
	// queue reachable, handlers running). Default: always ready.
	Ready func(ctx context.Context) error
	// Faults backs /faults.
	Faults *faults.Registry
	// Queue backs /dlq and /queue/stats.
	Queue backend.Backend
	// OutboxPending backs /outbox: how many messages the service's outbox
	// holds, committed and not yet forwarded to the queue (lag the
	// queue's statistics cannot see).
	OutboxPending func(ctx context.Context) (int64, error)
	// Metrics is mounted at GET /metrics.
	Metrics http.Handler
	// Routes adds the service's own routes (GET /state, …). Handlers
	// report errors by returning them (see StatusOf).
	Routes func(e *echo.Echo)
	// Logger defaults to discarding.
	Logger *slog.Logger
	// BodyLimit caps request bodies. Default "64K".
	BodyLimit string
	// ShutdownTimeout bounds Run's graceful stop. Default 5s.
	ShutdownTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Ready == nil {
		c.Ready = func(context.Context) error { return nil }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.BodyLimit == "" {
		c.BodyLimit = "64K"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
}

// Validate reports an unusable config.
func (c Config) Validate() error {
	var errs []error
	if c.Service == "" {
		errs = append(errs, errors.New("service name is required"))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: %w", c.Addr, err))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("shutdown timeout must not be negative"))
	}
	for _, h := range c.AllowedHosts {
		if err := crossorigin.CheckHost(h); err != nil {
			errs = append(errs, fmt.Errorf("allowed hosts: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Server is the admin HTTP server. It is an http.Handler, so tests can drive
// it with httptest without listening.
type Server struct {
	cfg   Config
	echo  *echo.Echo
	ready *readiness.Check // of cfg.Ready
}

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("admin: invalid config: %w", err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableErrorHandler: false}))
	e.Use(middleware.BodyLimit(cfg.BodyLimit))

	s := &Server{cfg: cfg, echo: e, ready: readiness.New(cfg.Ready, readyTimeout)}
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if cfg.Faults != nil {
		f := &faultRoutes{reg: cfg.Faults}
		e.GET("/faults", f.list)
		e.GET("/faults/:name", f.get)
		e.PUT("/faults/:name", f.set)
		e.POST("/faults/:name", f.set)
		e.DELETE("/faults/:name", f.reset)
	}
	if cfg.Queue != nil {
		d := &dlqRoutes{b: cfg.Queue, logger: cfg.Logger}
		e.GET("/dlq", d.list)
		e.DELETE("/dlq", d.purge)
		e.POST("/dlq/replay", d.replayAll)
		e.GET("/dlq/:id", d.get)
		e.POST("/dlq/:id/replay", d.replay)
		e.GET("/queue/stats", d.stats)
	}
	if cfg.OutboxPending != nil {
		e.GET("/outbox", s.outbox)
	}
	if cfg.Metrics != nil {
		e.GET("/metrics", metrics(cfg.Metrics))
	}
	// Profiles, to see where a running service spends its time. They
	// cost nothing until asked for; like the rest of this API they are
	// for whoever can reach the (loopback by default) address, but not
	// for a page of another site in a browser that can: a profile or a
	// trace costs the service while it runs, however it was asked for.
	profile := func(h http.HandlerFunc) echo.HandlerFunc {
		return echo.WrapHandler(crossorigin.ReadsOnlyFromOwnOrigin(h))
	}
	e.GET("/debug/pprof/cmdline", profile(pprof.Cmdline))
	e.GET("/debug/pprof/profile", profile(pprof.Profile))
	e.GET("/debug/pprof/symbol", profile(pprof.Symbol))
	e.POST("/debug/pprof/symbol", profile(pprof.Symbol))
	e.GET("/debug/pprof/trace", profile(pprof.Trace))
	e.GET("/debug/pprof/*", profile(pprof.Index)) // the index and named profiles (heap, goroutine, block, …)
	if cfg.Routes != nil {
		cfg.Routes(e)
	}
	return s, nil
}

// ServeHTTP serves the admin routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Listen binds Config.Addr. Serve the listener with Serve.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen: %w", err)
	}
	if host, _, _ := net.SplitHostPort(s.cfg.Addr); !isLoopback(host) {
		s.cfg.Logger.Warn("admin API listens beyond loopback: anyone who can reach it can crash the service and purge dead letters",
			slog.String("addr", ln.Addr().String()))
	}
	return ln, nil
}

// Serve serves ln until ctx ends, then shuts down gracefully: it stops
// accepting, lets requests in progress finish (up to ShutdownTimeout) and
// returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var requests httpdrain.Tracker
	srv := &http.Server{
		// HEAD like GET (curl -I, probes); no writes from other origins'
		// pages (the fault flags, purges and replays change things), nor
		// any request under a rebound name (the ledger, books and dead
		// letters' payloads are read here too), wherever it listens.
		Handler:           crossorigin.Host(s.cfg.AllowedHosts, crossorigin.Handler(headmethod.Handler(requests.Handler(s.echo)))),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.cfg.Logger.Info("admin API listening", slog.String("addr", "http://"+ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	// Requests still open after ShutdownTimeout are cut off. Clients that
	// stalled while sending their request are no reason for the stop to
	// fail; handlers still at work are.
	stalled, err := requests.Shutdown(sctx, srv)
	if stalled {
		s.cfg.Logger.Warn("admin API: clients still sending their requests after the shutdown timeout; closed their connections", slog.String("shutdown_timeout", s.cfg.ShutdownTimeout.String()))
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// metricsNameFilter is the query parameter of GET /metrics: Prometheus'
// handler (promhttp) answers only the metric families it names, given once
// per family.
const metricsNameFilter = "name[]"

// metrics serves h, the Prometheus handler, on a request whose query holds
// nothing but metricsNameFilter. Prometheus' scrapers send no query of
// their own (only what a scrape config's params adds).
func metrics(h http.Handler) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := checkQuery(c.QueryString(), []string{metricsNameFilter}, []string{metricsNameFilter}); err != nil {
			return err
		}
		h.ServeHTTP(c.Response(), c.Request())
		return nil
	}
}

// healthz and readyz take no query parameter, as every admin route but
// /metrics and the profiles.
func (s *Server) healthz(c echo.Context) error {
	if err := CheckQuery(c.QueryString()); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "service": s.cfg.Service})
}

// OutboxState is the answer of GET /outbox.
type OutboxState struct {
	// Pending counts the messages committed to the service's outbox and
	// not yet forwarded to the queue.
	Pending int64 `json:"pending"`
}

// outbox takes no query parameter and refuses any, as /state does.
func (s *Server) outbox(c echo.Context) error {
	if err := CheckQuery(c.QueryString()); err != nil {
		return err
	}
	n, err := s.cfg.OutboxPending(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, OutboxState{Pending: n})
}

// readyTimeout bounds GET /readyz, probes sharing the check in flight
// (readiness.Check): a check stuck on a frozen disk answers 503.
const readyTimeout = 2 * time.Second

func (s *Server) readyz(c echo.Context) error {
	if err := CheckQuery(c.QueryString()); err != nil {
		return err
	}
	if err := s.ready.Ready(c.Request().Context()); err != nil {
		// The answer says it: a probe that finds the service not ready
		// (every second during an outage) is no error record of the
		// service, as a 503 of another route is.
		s.cfg.Logger.DebugContext(c.Request().Context(), "not ready", slog.Any("error", err))
		writeProblem(c, problemFor(&Problem{Status: http.StatusServiceUnavailable, Title: "Not ready", Detail: err.Error()}, c.Request().URL.Path))
		return nil
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready", "service": s.cfg.Service})
}
