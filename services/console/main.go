// Command console is orderflow's web console: place orders and watch each
// saga live, flip fault flags, work the dead-letter queue and jump to an
// order's trace in Jaeger. It is a client like any other: it uses the order
// service's public API, each service's loopback admin API and the queue
// module; it has no back door into a service's database.
//
// Run "console --help" for the flags and their environment variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/services/console/internal/upstream"
	"github.com/orderflow/orderflow/services/console/internal/web"
)

func main() {
	// A reader of its output that goes away (a killed devrun, a closed
	// pipe) must not end the process mid-stop with SIGPIPE: writes to it
	// fail instead, and the graceful stop goes on.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "console:", err)
		os.Exit(1)
	}
}

// Defaults of the flags: the addresses `go tool task run` uses.
const (
	defaultHTTPAddr      = "127.0.0.1:8090"
	defaultOrderURL      = "http://127.0.0.1:8080"
	defaultOrderAdminURL = "http://127.0.0.1:8084"
	defaultInventoryURL  = "http://127.0.0.1:8081"
	defaultPaymentURL    = "http://127.0.0.1:8082"
	defaultShippingURL   = "http://127.0.0.1:8083"
	defaultQueueURL      = "sqlite://data/queue.db"
)

// config is the command line, each flag falling back to an environment
// variable.
type config struct {
	HTTPAddr        string
	AllowedHosts    []string
	OrderURL        string
	OrderAdminURL   string
	InventoryURL    string
	PaymentURL      string
	ShippingURL     string
	QueueURL        string
	JaegerUIURL     string
	CatalogFile     string
	Refresh         time.Duration
	UpstreamTimeout time.Duration
	LogLevel        slog.Level
}

// lookupFunc reads an environment variable.
type lookupFunc func(string) (string, bool)

func parseConfig(args []string, lookup lookupFunc, out io.Writer) (config, error) {
	env := func(name, def string) string {
		if v, ok := lookup(name); ok && v != "" {
			return v
		}
		return def
	}
	var errs []error
	// envDuration reads variable name, the default of flag; an error
	// names both, as the services' (servicecmd.EnvDefaults) do.
	envDuration := func(flag, name string, def time.Duration) time.Duration {
		v := env(name, "")
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s (%s=%q): %w", flag, name, v, err))
			return def
		}
		return d
	}
	var c config
	var level, allowed string
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.HTTPAddr, "http-addr", env("HTTP_ADDR", defaultHTTPAddr), "listen address of the console; loopback by default (env HTTP_ADDR)")
	fs.StringVar(&allowed, "allowed-hosts", env("ALLOWED_HOSTS", web.DefaultAllowedHosts), "comma-separated host names (no port) the console answers to in the Host header, against DNS rebinding; the name in the browser's address bar must be one (env ALLOWED_HOSTS)")
	fs.StringVar(&c.OrderURL, "order-url", env("ORDER_URL", defaultOrderURL), "the order service's public API (env ORDER_URL)")
	fs.StringVar(&c.OrderAdminURL, "order-admin-url", env("ORDER_ADMIN_URL", defaultOrderAdminURL), "the order service's admin API (env ORDER_ADMIN_URL)")
	fs.StringVar(&c.InventoryURL, "inventory-url", env("INVENTORY_URL", defaultInventoryURL), "inventory's admin API (env INVENTORY_URL)")
	fs.StringVar(&c.PaymentURL, "payment-url", env("PAYMENT_URL", defaultPaymentURL), "payment's admin API (env PAYMENT_URL)")
	fs.StringVar(&c.ShippingURL, "shipping-url", env("SHIPPING_URL", defaultShippingURL), "shipping's admin API (env SHIPPING_URL)")
	fs.StringVar(&c.QueueURL, "queue-url", env("QUEUE_URL", defaultQueueURL), "the shared queue, for topic statistics and dead letters: sqlite://PATH or postgres://… (env QUEUE_URL)")
	fs.StringVar(&c.JaegerUIURL, "jaeger-ui-url", env("JAEGER_UI_URL", web.DefaultJaegerUIURL), "Jaeger UI; an order's trace opens at URL/trace/{trace_id} (env JAEGER_UI_URL)")
	fs.StringVar(&c.CatalogFile, "catalog", env("CATALOG_FILE", ""), "JSON catalogue naming and pricing the SKUs, as the services take it; default the built-in one (env CATALOG_FILE)")
	fs.DurationVar(&c.Refresh, "refresh", envDuration("refresh", "CONSOLE_REFRESH", web.DefaultRefresh), "how often live parts of the pages poll (env CONSOLE_REFRESH)")
	fs.DurationVar(&c.UpstreamTimeout, "upstream-timeout", envDuration("upstream-timeout", "CONSOLE_UPSTREAM_TIMEOUT", web.DefaultUpstreamTimeout), "bound of each call to a service; a service that does not answer in time is shown as down; a page's calls together get twice it, an action's three times; at most 9s (env CONSOLE_UPSTREAM_TIMEOUT)")
	fs.StringVar(&level, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	fs.Usage = func() {
		fmt.Fprint(out, `Usage: console [flags]

The web console of orderflow: place orders and watch each saga live, flip
the services' fault flags, work the dead-letter queue, restock inventory and
open an order's trace in Jaeger. Open http://`+defaultHTTPAddr+` (or --http-addr).

It is a client like any other: the order API (--order-url), each service's
admin API (--order-admin-url, --inventory-url, --payment-url,
--shipping-url) and the queue module (--queue-url). A service that is down
is shown as down; the console keeps working and retries.

Flags (each falls back to the environment variable named in its help):
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level (LOG_LEVEL): %w", err))
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("--http-addr (HTTP_ADDR) %q: %w", c.HTTPAddr, err))
	}
	for _, u := range []struct{ flag, env, url string }{
		{"order-url", "ORDER_URL", c.OrderURL}, {"order-admin-url", "ORDER_ADMIN_URL", c.OrderAdminURL},
		{"inventory-url", "INVENTORY_URL", c.InventoryURL}, {"payment-url", "PAYMENT_URL", c.PaymentURL},
		{"shipping-url", "SHIPPING_URL", c.ShippingURL}, {"jaeger-ui-url", "JAEGER_UI_URL", c.JaegerUIURL},
	} {
		if _, err := upstream.ParseBaseURL(u.url); err != nil {
			errs = append(errs, fmt.Errorf("--%s (%s): %w", u.flag, u.env, err))
		}
	}
	for h := range strings.SplitSeq(allowed, ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.AllowedHosts = append(c.AllowedHosts, h)
		}
	}
	if len(c.AllowedHosts) == 0 {
		errs = append(errs, fmt.Errorf("--allowed-hosts (ALLOWED_HOSTS) %q: no host name", allowed))
	}
	// Config.Refresh's 0 is "the default": from the command line it would
	// quietly turn an explicit 0 into 1s.
	if c.Refresh < web.MinRefresh {
		errs = append(errs, fmt.Errorf("--refresh (CONSOLE_REFRESH) must be at least %s, got %s", web.MinRefresh, c.Refresh))
	}
	if err := web.CheckUpstreamTimeout(c.UpstreamTimeout); err != nil {
		errs = append(errs, fmt.Errorf("--upstream-timeout (CONSOLE_UPSTREAM_TIMEOUT): %w", err))
	}
	// What can be known without the queue: the console opens it on first
	// use, so that it starts before the services have created it.
	if err := web.CheckQueueURL(c.QueueURL); err != nil {
		errs = append(errs, fmt.Errorf("--queue-url (QUEUE_URL): %w", err))
	}
	return c, errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func run(ctx context.Context, args []string, lookup lookupFunc, stderr io.Writer) error {
	cfg, err := parseConfig(args, lookup, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	cat, err := catalog.Load(cfg.CatalogFile)
	if err != nil {
		return fmt.Errorf("--catalog (CATALOG_FILE): %w", err)
	}
	q := web.NewQueueStore(cfg.QueueURL)
	defer func() {
		if err := q.Close(); err != nil {
			logger.Warn("close queue", slog.Any("error", err))
		}
	}()
	srv, err := web.New(web.Config{
		OrderURL:        cfg.OrderURL,
		OrderAdminURL:   cfg.OrderAdminURL,
		InventoryURL:    cfg.InventoryURL,
		PaymentURL:      cfg.PaymentURL,
		ShippingURL:     cfg.ShippingURL,
		Queue:           q,
		QueueName:       cfg.QueueURL,
		JaegerUIURL:     cfg.JaegerUIURL,
		Catalog:         cat,
		Refresh:         cfg.Refresh,
		UpstreamTimeout: cfg.UpstreamTimeout,
		AllowedHosts:    cfg.AllowedHosts,
		Logger:          logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if host, _, _ := net.SplitHostPort(cfg.HTTPAddr); !isLoopback(host) {
		// The Host check stops browsers misled by DNS rebinding, not a
		// client that sends an allowed name itself.
		logger.Warn("the console listens beyond loopback: anyone who can reach it can inject faults and purge dead letters",
			slog.String("addr", ln.Addr().String()))
	}
	logger.Info("console listening", slog.String("url", "http://"+ln.Addr().String()),
		slog.String("allowed_hosts", strings.Join(cfg.AllowedHosts, ",")),
		slog.String("order_url", web.RedactURL(cfg.OrderURL)), slog.String("queue_url", web.RedactURL(cfg.QueueURL)))
	return srv.Serve(ctx, ln)
}
