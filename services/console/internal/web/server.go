// Package web is the console's web UI: echo handlers that render Go
// templates (embedded with go:embed) from the order API, the services'
// admin APIs and the shared queue. Pages refresh themselves by polling
// small HTML fragments (htmx, vendored under static/); every page and form
// also works without JavaScript.
//
// A service that cannot be reached is shown as down where its data would
// be: pages still render. State-changing requests are POSTs protected
// against cross-site request forgery (echo's CSRF middleware: Sec-Fetch-Site
// for browsers that send it, a cookie and form token otherwise), and the
// server refuses Host headers other than loopback names when it listens on
// loopback (DNS rebinding).
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
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/services/console/internal/upstream"
)

// Service names, in the order the pages list them.
const (
	ServiceOrder     = "order"
	ServiceInventory = "inventory"
	ServicePayment   = "payment"
	ServiceShipping  = "shipping"
)

// Defaults of Config.
const (
	DefaultJaegerUIURL     = "http://localhost:16686"
	DefaultRefresh         = time.Second
	DefaultUpstreamTimeout = 3 * time.Second
	defaultBodyLimit       = "64K"
	csrfField              = "_csrf"
	csrfCookie             = "_console_csrf"
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
	// QueueName is shown on the Queue page (the queue URL); optional.
	QueueName string
	// JaegerUIURL is where order traces open: JaegerUIURL/trace/{trace_id}.
	// Default DefaultJaegerUIURL.
	JaegerUIURL string
	// Catalog names and prices the SKUs. Default catalog.Default().
	Catalog catalog.Catalog
	// Refresh is how often live parts of the pages poll. Default 1s.
	Refresh time.Duration
	// UpstreamTimeout bounds each call to a service. Default 3s.
	UpstreamTimeout time.Duration
	// HTTPClient calls the services. Default: a fresh http.Client.
	HTTPClient *http.Client
	// CheckHost refuses requests whose Host is not a loopback name, against
	// DNS rebinding; set it when listening on loopback.
	CheckHost bool
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
		c.HTTPClient = &http.Client{}
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
	if c.Refresh < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("refresh interval %s is below 100ms", c.Refresh))
	}
	if c.UpstreamTimeout < 0 {
		errs = append(errs, errors.New("upstream timeout must not be negative"))
	}
	return errors.Join(errs...)
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
	orders    *upstream.Orders
	inventory *upstream.Admin
	services  []service
	queue     Queue
	pages     *renderer
	jaeger    string
}

// New builds the console's routes.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("console: invalid config: %w", err)
	}
	pages, err := newRenderer()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, queue: cfg.Queue, pages: pages, jaeger: strings.TrimRight(cfg.JaegerUIURL, "/")}
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

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: s.logPanic}),
		s.secureHeaders,
	)
	if cfg.CheckHost {
		e.Use(checkHost)
	}
	e.Use(
		middleware.BodyLimit(defaultBodyLimit),
		middleware.CSRFWithConfig(middleware.CSRFConfig{
			TokenLookup:    "form:" + csrfField + ",header:" + echo.HeaderXCSRFToken,
			CookieName:     csrfCookie,
			CookiePath:     "/",
			CookieHTTPOnly: true,
			CookieSameSite: http.SameSiteStrictMode,
			Skipper: func(c echo.Context) bool {
				return strings.HasPrefix(c.Path(), "/static/") || c.Path() == "/healthz"
			},
			ErrorHandler: func(err error, c echo.Context) error { return errCSRF },
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

// Serve serves ln until ctx ends, then shuts down gracefully (up to 5s).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
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

// checkHost refuses Host headers that are not loopback names: a page of
// another site whose name was rebound to 127.0.0.1 must not drive the
// console.
func checkHost(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		host := c.Request().Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		ip := net.ParseIP(host)
		if !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
			return &pageError{status: http.StatusMisdirectedRequest, title: "Unknown host",
				detail: fmt.Sprintf("The console listens on loopback and answers only to localhost or a loopback address, not %q.", c.Request().Host)}
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
			slog.String("method", c.Request().Method), slog.String("path", c.Request().URL.Path), slog.Any("error", err))
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

// withQuery returns path with q encoded (path alone when q is empty).
func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
