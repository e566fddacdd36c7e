// Package web is the console's web UI: echo handlers that render Go
// templates (embedded with go:embed) from the order API, the services'
// admin APIs and the shared queue. Pages refresh themselves by polling
// small HTML fragments (htmx, vendored under static/); every page and form
// also works without JavaScript.
//
// A service that cannot be reached is shown as down where its data would
// be: pages still render. State-changing requests are POSTs protected
// against cross-site request forgery: a browser's must be same-origin or
// started by the person (Sec-Fetch-Site same-origin or none, and Origin
// against Host), and clients that send neither header need a cookie and
// form token (echo's CSRF middleware). The server
// answers only to the host names of Config.AllowedHosts, whatever address
// it listens on (DNS rebinding).
package web

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/pkg/crossorigin"
	"github.com/orderflow/orderflow/pkg/headmethod"
	"github.com/orderflow/orderflow/services/console/internal/upstream"
)

// Service names, in the order the pages list them.
const (
	ServiceOrder     = "order"
	ServiceInventory = "inventory"
	ServicePayment   = "payment"
	ServiceShipping  = "shipping"
)

// MinRefresh is the shortest Config.Refresh that Validate accepts.
const MinRefresh = 100 * time.Millisecond

// Defaults of Config.
const (
	DefaultJaegerUIURL     = "http://localhost:16686"
	DefaultRefresh         = time.Second
	DefaultUpstreamTimeout = 3 * time.Second
	DefaultShutdownTimeout = 5 * time.Second
	// DefaultAllowedHosts are the names a browser on the console's own
	// machine uses, comma-separated as --allowed-hosts takes them.
	DefaultAllowedHosts = "localhost,127.0.0.1,::1"
	defaultBodyLimit    = "64K"
	// writeTimeout bounds writing an answer, from the end of the request
	// headers: a reply not written by then is cut (an empty reply).
	writeTimeout = 30 * time.Second
	// replyMargin is what a request keeps after its upstream calls to
	// render and write its answer.
	replyMargin = 3 * time.Second
	// MaxUpstreamTimeout is the largest Config.UpstreamTimeout: an
	// action's rounds of upstream calls (see upstreamDeadline), each
	// bounded by it, must fit writeTimeout.
	MaxUpstreamTimeout = (writeTimeout - replyMargin) / actionRounds
	// actionRounds is how many rounds of upstream calls, one after the
	// other, an action may make: a read its form needs (the stock for an
	// order, the flags for a fault), the change, then the page after it.
	actionRounds = 3
	csrfField    = "_csrf"
	csrfCookie   = "_console_csrf"
)

// Config configures New. The five service URLs and Queue are required.
type Config struct {
	// OrderURL is the order service's public API.
	OrderURL string
	// OrderAdminURL, InventoryURL, PaymentURL and ShippingURL are the
	// services' admin APIs.
	OrderAdminURL string
	InventoryURL  string
	PaymentURL    string
	ShippingURL   string
	// Queue backs the Queue page.
	Queue Queue
	// QueueName is shown on the Queue page (the queue URL, its password
	// masked); optional.
	QueueName string
	// JaegerUIURL is where order traces open: JaegerUIURL/trace/{trace_id}.
	// Default DefaultJaegerUIURL.
	JaegerUIURL string
	// Catalog names and prices the SKUs. Default catalog.Default().
	Catalog catalog.Catalog
	// Refresh is how often live parts of the pages poll. Default 1s.
	Refresh time.Duration
	// UpstreamTimeout bounds each call to a service or to Queue, and a
	// request's calls together (twice it, for an action and the page after
	// it). Default 3s, at most MaxUpstreamTimeout.
	UpstreamTimeout time.Duration
	// HTTPClient calls the services. Default: upstream.NewHTTPClient(),
	// which follows no redirects.
	HTTPClient *http.Client
	// AllowedHosts are the host names (no port; compared without case) a
	// request's Host may name; others are refused, against DNS rebinding.
	// Default DefaultAllowedHosts.
	AllowedHosts []string
	// ShutdownTimeout is how long Serve lets running requests finish once
	// its context ends before cancelling them. Default 5s.
	ShutdownTimeout time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.JaegerUIURL == "" {
		c.JaegerUIURL = DefaultJaegerUIURL
	}
	if c.Catalog == nil {
		c.Catalog = catalog.Default()
	}
	if c.Refresh == 0 {
		c.Refresh = DefaultRefresh
	}
	if c.UpstreamTimeout == 0 {
		c.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if c.HTTPClient == nil {
		c.HTTPClient = upstream.NewHTTPClient()
	}
	if len(c.AllowedHosts) == 0 {
		c.AllowedHosts = strings.Split(DefaultAllowedHosts, ",")
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports an unusable config.
func (c Config) Validate() error {
	var errs []error
	for _, u := range []struct{ name, url string }{
		{"order URL", c.OrderURL}, {"order admin URL", c.OrderAdminURL}, {"inventory URL", c.InventoryURL},
		{"payment URL", c.PaymentURL}, {"shipping URL", c.ShippingURL}, {"Jaeger UI URL", c.JaegerUIURL},
	} {
		if _, err := upstream.ParseBaseURL(u.url); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.name, err))
		}
	}
	if c.Queue == nil {
		errs = append(errs, errors.New("queue is required"))
	}
	if c.Refresh < MinRefresh {
		errs = append(errs, fmt.Errorf("refresh interval %s is below %s", c.Refresh, MinRefresh))
	}
	if c.UpstreamTimeout < 0 {
		errs = append(errs, errors.New("upstream timeout must not be negative"))
	}
	if err := CheckUpstreamTimeout(c.UpstreamTimeout); err != nil {
		errs = append(errs, err)
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("shutdown timeout must not be negative"))
	}
	if _, err := crossorigin.NewHostSet(c.AllowedHosts); err != nil {
		errs = append(errs, fmt.Errorf("allowed hosts: %w", err))
	}
	return errors.Join(errs...)
}

// CheckUpstreamTimeout refuses an upstream timeout with which an action's
// rounds of upstream calls would not fit the server's write timeout: the
// answer would be cut.
func CheckUpstreamTimeout(d time.Duration) error {
	if d > MaxUpstreamTimeout {
		return fmt.Errorf("upstream timeout %s is above %s: an action's %d rounds of calls, each bounded by it, must fit the console's %s write timeout",
			d, MaxUpstreamTimeout, actionRounds, writeTimeout)
	}
	return nil
}

// service is one service as the Faults page shows it.
type service struct {
	Name  string
	Admin *upstream.Admin
}

// Server is the console. It is an http.Handler.
type Server struct {
	cfg       Config
	echo      *echo.Echo
	allowed   crossorigin.HostSet // AllowedHosts
	orders    *upstream.Orders
	inventory *upstream.Admin
	payment   *upstream.Admin
	shipping  *upstream.Admin
	services  []service
	queue     Queue
	pages     *renderer
	jaeger    string
}

// New builds the console's routes.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	pages, err := newRenderer()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, pages: pages, jaeger: strings.TrimRight(cfg.JaegerUIURL, "/"),
		queue: timeoutQueue{q: cfg.Queue, d: cfg.UpstreamTimeout, bulk: bulkQueueTimeout(cfg.UpstreamTimeout)}}
	// Validate has checked the names.
	s.allowed, _ = crossorigin.NewHostSet(cfg.AllowedHosts)
	client := func(name, u string) *upstream.Client {
		c, err := upstream.NewClient(name, u, cfg.HTTPClient, cfg.UpstreamTimeout)
		if err != nil {
			panic(err) // Validate checked every URL
		}
		return c
	}
	s.orders = upstream.NewOrders(client("order service", cfg.OrderURL))
	s.services = []service{
		{ServiceOrder, upstream.NewAdmin(client("order admin API", cfg.OrderAdminURL))},
		{ServiceInventory, upstream.NewAdmin(client("inventory", cfg.InventoryURL))},
		{ServicePayment, upstream.NewAdmin(client("payment", cfg.PaymentURL))},
		{ServiceShipping, upstream.NewAdmin(client("shipping", cfg.ShippingURL))},
	}
	s.inventory = s.services[1].Admin
	s.payment, s.shipping = s.services[2].Admin, s.services[3].Admin

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: s.logPanic}),
		s.secureHeaders,
		s.checkHost,
		methodFirst,
		checkOrigin,
		middleware.BodyLimit(defaultBodyLimit),
		s.upstreamDeadline,
		middleware.CSRFWithConfig(middleware.CSRFConfig{
			TokenLookup:    "form:" + csrfField + ",header:" + echo.HeaderXCSRFToken,
			CookieName:     csrfCookie,
			CookiePath:     "/",
			CookieHTTPOnly: true,
			CookieSameSite: http.SameSiteStrictMode,
			Skipper: func(c echo.Context) bool {
				return strings.HasPrefix(c.Path(), "/static/") || c.Path() == "/healthz"
			},
			// Called for a POST whose Sec-Fetch-Site is same-site or
			// cross-site. echo would check the cookie and token of a
			// same-site one, but same-site takes in every other port of
			// this host, whose pages can set the console's cookie (cookies
			// are not told apart by port) and post the token they chose.
			// Only same-origin requests change state, and those the person
			// started (none), which echo lets through before this: no page
			// can make a browser send none.
			AllowSecFetchSiteFunc: func(echo.Context) (bool, error) { return false, errCSRF },
			ErrorHandler:          func(err error, c echo.Context) error { return errCSRF },
		}),
	)

	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	e.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static)))))
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/orders") })
	e.GET("/banner", s.banner)

	e.GET("/orders", s.ordersPage)
	e.GET("/orders/live", s.ordersLive)
	e.POST("/orders", s.placeOrder)
	e.GET("/orders/:id", s.orderPage)
	e.GET("/orders/:id/live", s.orderLive)
	e.POST("/orders/:id/cancel", s.cancelOrder)

	e.GET("/faults", s.faultsPage)
	e.GET("/faults/:service/live", s.faultsLive)
	e.POST("/faults/:service/:name", s.setFault)
	e.POST("/faults/:service/:name/reset", s.resetFault)

	e.GET("/queue", s.queuePage)
	e.GET("/queue/topics", s.topicsLive)
	e.GET("/queue/outboxes", s.outboxesLive)
	e.GET("/queue/dlq", s.deadLettersLive)
	e.GET("/queue/dlq/:id", s.deadLetterPage)
	e.POST("/queue/dlq/:id/replay", s.replayDeadLetter)
	e.POST("/queue/dlq/replay", s.replayAll)
	e.POST("/queue/dlq/purge", s.purge)

	e.GET("/stock", s.stockPage)
	e.GET("/stock/live", s.stockLive)
	e.POST("/stock/:sku/restock", s.restock)
	s.echo = e
	return s, nil
}

// ServeHTTP serves the console.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Serve serves ln until ctx ends, then shuts down: running requests get
// ShutdownTimeout to finish, then their context is cancelled and their
// connections closed. Serve returns only once no handler runs, so the
// caller may close the Queue next.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Requests do not run on ctx: its end starts a graceful shutdown, in
	// which they finish. base ends only when that takes too long.
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	var running handlerGate
	srv := &http.Server{
		Handler:           running.wrap(headmethod.Handler(s)), // HEAD like GET
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		// The listener failed: end the requests it had accepted too.
		cancelBase()
		_ = srv.Close()
		running.closeAndWait()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Not an error of the console's: a slow service or queue. Every
		// call a handler makes ends with its context.
		s.cfg.Logger.Warn("requests still running after the shutdown timeout; cancelling them",
			slog.Duration("timeout", s.cfg.ShutdownTimeout), slog.Any("error", err))
		cancelBase()
		_ = srv.Close()
	}
	// srv.Close does not wait for handlers, and one may even start after
	// it: wait for them all, refusing new ones.
	running.closeAndWait()
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// handlerGate counts running handlers. After closeAndWait it refuses new
// ones: a sync.WaitGroup alone must not be Added to while it is waited on.
type handlerGate struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (g *handlerGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			http.Error(w, "the console is shutting down", http.StatusServiceUnavailable)
			return
		}
		g.wg.Add(1)
		g.mu.Unlock()
		defer g.wg.Done()
		h.ServeHTTP(w, r)
	})
}

// closeAndWait refuses new handlers and waits for the running ones.
func (g *handlerGate) closeAndWait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

func (s *Server) logPanic(c echo.Context, err error, stack []byte) error {
	s.cfg.Logger.ErrorContext(c.Request().Context(), "panic in console handler",
		slog.String("path", c.Request().URL.Path), slog.Any("error", err), slog.String("stack", string(stack)))
	return err
}

// secureHeaders sets the headers every answer carries.
func (s *Server) secureHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Add("Vary", "HX-Request")
		if !strings.HasPrefix(c.Request().URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		return next(c)
	}
}

// checkHost refuses a Host that is not an allowed name, whatever address
// the console listens on. A page of another site whose name was rebound to
// 127.0.0.1 (DNS rebinding) reaches the console with its own name in Host,
// and its requests count as same-origin for the browser, so the CSRF
// checks would let them through.
func (s *Server) checkHost(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.allowed.Contains(c.Request().Host) {
			return &pageError{status: http.StatusMisdirectedRequest, title: "Unknown host",
				detail: fmt.Sprintf("The console answers to %s (--allowed-hosts), not to %q.",
					strings.Join(s.cfg.AllowedHosts, ", "), c.Request().Host)}
		}
		return next(c)
	}
}

// upstreamDeadline gives each request one deadline for all its calls to
// services and the queue, besides the bound of each call: a page whose
// parts each waited a full upstream timeout in turn added them up, past
// the write timeout. A page gets two upstream timeouts (its parts are
// fetched at once); an action (a POST) actionRounds, as it may read before
// it changes something and then renders the page; replaying or purging
// every dead letter gets what the write timeout leaves.
func (s *Server) upstreamDeadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		d := 2 * s.cfg.UpstreamTimeout
		if c.Request().Method == http.MethodPost {
			d = actionRounds * s.cfg.UpstreamTimeout
		}
		if p := c.Path(); p == "/queue/dlq/replay" || p == "/queue/dlq/purge" {
			d = writeTimeout - replyMargin
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), d)
		defer cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		return next(c)
	}
}

// parallel runs fns at once and returns when all have: the parts of a
// page come from different services, and one slow service must not hold
// up the others, or make them look down for want of time.
func parallel(fns ...func()) {
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Go(fn)
	}
	wg.Wait()
}

// methodFirst answers a method the route does not take (405, or the
// OPTIONS answer) before the CSRF checks: they would refuse it as a request
// from another site (403), which says nothing of what is wrong. The router
// marks such a request with the route's Allow header; its handler changes
// nothing.
func methodFirst(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, ok := c.Get(echo.ContextKeyHeaderAllow).(string); ok {
			return c.Handler()(c)
		}
		return next(c)
	}
}

// checkOrigin refuses a state-changing request whose Origin, when the
// browser sends one, is not the console's own address (its Host).
func checkOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		origin := r.Header.Get(echo.HeaderOrigin)
		if origin == "" || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
			return next(c)
		}
		// "null" (a sandboxed page, a redirect across sites) parses with
		// no host, and is refused with every other mismatch.
		if u, err := url.Parse(origin); err != nil || !strings.EqualFold(u.Host, r.Host) {
			return errCSRF
		}
		return next(c)
	}
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.ServeHTTP(w, r)
	})
}

// isHTMX reports a request made by htmx (a fragment is answered).
func isHTMX(c echo.Context) bool { return c.Request().Header.Get("HX-Request") == "true" }

// errCSRF refuses a state-changing request that may come from another site.
var errCSRF = &pageError{status: http.StatusForbidden, title: "Request refused",
	detail: "This form could not be verified (a request from another site, or an expired page). Reload the page and try again."}

// pageError is an error shown as a page (or, to htmx, as a flash).
type pageError struct {
	status int
	title  string
	detail string
}

func (e *pageError) Error() string { return e.title + ": " + e.detail }

// handleError renders errors that reach echo: unknown routes, refused
// requests, panics. Handlers render their own expected failures (a
// service down, invalid input) in the page.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	pe := &pageError{}
	var he *echo.HTTPError
	switch {
	case errors.As(err, &pe):
	case errors.As(err, &he):
		pe = &pageError{status: he.Code, title: http.StatusText(he.Code)}
		switch he.Code {
		case http.StatusNotFound:
			pe.detail = "There is no such page in the console."
		case http.StatusMethodNotAllowed:
			pe.detail = "This page does not accept that method."
		case http.StatusRequestEntityTooLarge:
			pe.detail = "The form sent is too large."
		case http.StatusForbidden: // the CSRF middleware refusing a cross-site request
			pe = errCSRF
		default:
			if m, ok := he.Message.(string); ok {
				pe.detail = m
			}
		}
	default:
		s.cfg.Logger.ErrorContext(c.Request().Context(), "console request failed",
			slog.String("method", headmethod.Method(c.Request())), slog.String("path", c.Request().URL.Path), slog.Any("error", err))
		pe = &pageError{status: http.StatusInternalServerError, title: "Console error",
			detail: "Something went wrong in the console itself; its log says what."}
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(pe.status)
		return
	}
	if isHTMX(c) {
		// Keep the region that asked; show the error in the flash only.
		c.Response().Header().Set("HX-Reswap", "none")
		_ = s.pages.writeFragment(c, pe.status, "partials", "flash-oob", flashError(pe.title+": "+pe.detail))
		return
	}
	p := s.newPage(c, pe.title, "")
	p.Data = struct {
		Status        int
		Title, Detail string
	}{pe.status, pe.title, pe.detail}
	p.Status = pe.status
	if err := s.pages.writePage(c, pe.status, "error", p); err != nil {
		s.cfg.Logger.Debug("cannot write error page", slog.Any("error", err))
	}
}

// pathParam returns the path parameter name, decoded. echo routes on the
// escaped path when the request has one (so that an escaped "/" stays in
// its segment) and then gives the parameter still escaped; otherwise the
// path, and the parameter, are decoded already.
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v, nil
	}
	d, err := url.PathUnescape(v)
	if err != nil {
		return "", &pageError{status: http.StatusBadRequest, title: "Bad path",
			detail: fmt.Sprintf("The %s in the path is not escaped properly: %v", name, err)}
	}
	return d, nil
}

// withQuery returns path with q encoded (path alone when q is empty).
func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
