// Command order is orderflow's order service: the event-sourced Order
// aggregate and the saga that drives each order through inventory, payment
// and shipping (or compensates), behind an HTTP API.
//
//	order [flags]                        run the service
//	order rebuild-projections [flags]    rebuild the read models from the events
//
// Run "order --help" for the flags and their environment variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicecmd"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/queue/retry"
	"github.com/orderflow/orderflow/services/order/service"
)

func main() {
	// A reader of its output that goes away (a killed devrun, a closed
	// pipe) must not end the process mid-stop with SIGPIPE: writes to it
	// fail instead, and the graceful stop goes on.
	signal.Ignore(syscall.SIGPIPE)
	// SIGTERM or SIGINT stops the service gracefully, a second one at
	// once (servicecmd.NotifyContext).
	ctx, stop := servicecmd.NotifyContext(context.Background(), service.Name, os.Stderr)
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "order:", err)
		os.Exit(1)
	}
}

// config is the command line, each flag falling back to an environment
// variable.
type config struct {
	Command  string // "" (run) or "rebuild-projections"
	Service  service.Config
	LogLevel slog.Level
}

func parseConfig(args []string, lookup servicecmd.LookupFunc, out io.Writer) (config, error) {
	var c config
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		c.Command, args = args[0], args[1:]
		if c.Command != "rebuild-projections" {
			return config{}, fmt.Errorf("unknown command %q (known: rebuild-projections)", c.Command)
		}
	}
	envs := servicecmd.NewEnvDefaults(lookup)
	env, envInt, envDuration := envs.String, envs.Int, envs.Duration
	var errs []error
	s := &c.Service
	var level, allowedHosts string
	fs := flag.NewFlagSet("order", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&s.QueueURL, "queue-url", env("QUEUE_URL", service.DefaultQueueURL), "shared queue: sqlite://PATH or postgres://USER@HOST/DB (env QUEUE_URL)")
	fs.StringVar(&s.DataDir, "data-dir", env("DATA_DIR", service.DefaultDataDir), "directory of the service's own database, "+service.DBFile+" (env DATA_DIR)")
	fs.StringVar(&s.HTTPAddr, "http-addr", env("HTTP_ADDR", service.DefaultHTTPAddr), "order API listen address (env HTTP_ADDR)")
	fs.StringVar(&s.AdminAddr, "admin-addr", env("ADMIN_ADDR", service.DefaultAdminAddr), "admin API listen address, loopback by default; \"off\" disables it (env ADMIN_ADDR)")
	fs.StringVar(&allowedHosts, "allowed-hosts", env("ALLOWED_HOSTS", ""), servicecmd.AllowedHostsUsage)
	fs.StringVar(&s.CatalogFile, "catalog", env("CATALOG_FILE", ""), "JSON catalogue [{\"sku\",\"name\",\"unit_price_cents\",\"initial_stock\"}] pricing orders; default the built-in one (env CATALOG_FILE)")
	fs.DurationVar(&s.StepTimeout, "step-timeout", envDuration("step-timeout", "STEP_TIMEOUT", service.DefaultStepTimeout), "how long the saga waits for inventory, payment or shipping before compensating; must be positive (env STEP_TIMEOUT)")
	fs.DurationVar(&s.CompensationTimeout, "compensation-timeout", envDuration("compensation-timeout", "COMPENSATION_TIMEOUT", 0), "how long before an unconfirmed compensation is sent again, doubled after each resend up to 10m; 0 means --step-timeout (env COMPENSATION_TIMEOUT)")
	fs.DurationVar(&s.TimeoutScanInterval, "timeout-scan-interval", envDuration("timeout-scan-interval", "TIMEOUT_SCAN_INTERVAL", 0), "how often due step deadlines are looked for; 0 means min(1s, step timeout/4) (env TIMEOUT_SCAN_INTERVAL)")
	fs.IntVar(&s.MaxOpenOrders, "max-open-orders", envInt("max-open-orders", "MAX_OPEN_ORDERS", service.DefaultMaxOpenOrders), "refuse new orders (503, Retry-After) while this many have not ended, so that overload sheds work instead of piling up step timeouts; 0: no limit (env MAX_OPEN_ORDERS)")
	fs.IntVar(&s.Concurrency, "concurrency", envInt("concurrency", "CONCURRENCY", service.DefaultConcurrency), "replies of one topic handled at once (env CONCURRENCY)")
	fs.IntVar(&s.MaxAttempts, "max-attempts", envInt("max-attempts", "MAX_ATTEMPTS", 5), "deliveries of a failing reply before it is dead-lettered (env MAX_ATTEMPTS)")
	fs.IntVar(&s.MaxAbandoned, "max-abandoned", envInt("max-abandoned", "MAX_ABANDONED", retry.DefaultMaxAbandoned), servicecmd.MaxAbandonedUsage)
	fs.StringVar(&s.Synchronous, "db-synchronous", env("DB_SYNCHRONOUS", "NORMAL"), "SQLite synchronous pragma of the service's database: NORMAL or FULL (env DB_SYNCHRONOUS)")
	fs.DurationVar(&s.ShutdownTimeout, "shutdown-timeout", envDuration("shutdown-timeout", "SHUTDOWN_TIMEOUT", servicehost.DefaultShutdownTimeout), servicecmd.ShutdownTimeoutUsage)
	fs.DurationVar(&s.DedupRetention, "dedup-retention", envDuration("dedup-retention", "DEDUP_RETENTION", servicehost.DefaultDedupRetention), servicecmd.DedupRetentionUsage)
	fs.StringVar(&level, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	fs.Usage = func() { usage(fs, out) }
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	errs = append(errs, envs.Err(),
		servicecmd.SharedQueue(s.QueueURL),
		servicecmd.NotEmpty("data-dir", "DATA_DIR", s.DataDir), // the service would take "" for its default
		servicecmd.ListenAddr("http-addr", "HTTP_ADDR", s.HTTPAddr),
		adminAddr(s.AdminAddr),
		servicecmd.AllowedHosts(&allowedHosts),
		servicecmd.Catalog(s.CatalogFile),
		// 0 would quietly take the default; a negative value means nothing.
		servicecmd.Positive("step-timeout", "STEP_TIMEOUT", s.StepTimeout),
		servicecmd.Positive("shutdown-timeout", "SHUTDOWN_TIMEOUT", s.ShutdownTimeout),
		servicecmd.DedupRetention(s.DedupRetention),
		servicecmd.AtLeastOne("concurrency", "CONCURRENCY", s.Concurrency),
		servicecmd.AtLeastOne("max-attempts", "MAX_ATTEMPTS", s.MaxAttempts),
		servicecmd.AtLeastOne("max-abandoned", "MAX_ABANDONED", s.MaxAbandoned),
		// Their 0 is documented: --step-timeout, min(1s, step timeout/4).
		servicecmd.NotNegative("compensation-timeout", "COMPENSATION_TIMEOUT", s.CompensationTimeout),
		servicecmd.NotNegative("timeout-scan-interval", "TIMEOUT_SCAN_INTERVAL", s.TimeoutScanInterval),
	)
	if err := service.CheckSynchronous(s.Synchronous); err != nil {
		errs = append(errs, fmt.Errorf("--db-synchronous (DB_SYNCHRONOUS) %w", err))
	}
	if s.MaxOpenOrders < 0 {
		errs = append(errs, fmt.Errorf("--max-open-orders (MAX_OPEN_ORDERS) must not be negative, got %d", s.MaxOpenOrders))
	}
	s.NoOpenOrderLimit = s.MaxOpenOrders == 0 // service.Config's 0 is the default
	s.AllowedHosts = servicecmd.SplitHosts(allowedHosts)
	errs = append(errs, servicecmd.LogLevel(&c.LogLevel, level))
	return c, errors.Join(errs...)
}

func usage(fs *flag.FlagSet, out io.Writer) {
	fmt.Fprint(out, `Usage:
  order [flags]                       run the order service
  order rebuild-projections [flags]   rebuild the order list, status counts and
                                      deadline index from the event store
                                      (stop the service first; uses --data-dir)

The order service of orderflow places orders (POST /orders) and drives each
one through its saga: reserve stock, charge payment, schedule shipment, or
compensate. It emits inventory/payment/shipping commands and order.events
through its outbox and consumes inventory.events, payment.events and
shipping.events. Order API on --http-addr, admin API (health, fault flags,
dead letters, queue stats, metrics, POST /projections/rebuild) on --admin-addr.
`)
	fmt.Fprint(out, `Processed reply ids and the Idempotency-Keys of POST /orders are kept for
--dedup-retention (purged every minute); a key older than that places a new order.

Flags (each falls back to the environment variable named in its help):
`)
	fs.PrintDefaults()
	servicecmd.FaultFlagsUsage(out, service.Name)
	fmt.Fprintf(out, "\nTelemetry: the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER=none, ...).\n")
	fmt.Fprintf(out, "C heap: C_HEAP_TRIM_THRESHOLD=BYTES keeps that much freed C memory for reuse (default 64 MiB; 0 leaves glibc's malloc as it is).\n")
	fmt.Fprintf(out, "Go heap: GOGC defaults to %d here (Go's own default is 100); GOGC in the environment wins.\n", servicecmd.DefaultGCPercent)
}

func run(ctx context.Context, args []string, lookup servicecmd.LookupFunc, stderr io.Writer) error {
	cfg, err := parseConfig(args, lookup, stderr)
	if err != nil {
		return err
	}
	p, err := servicecmd.StartProcess(ctx, service.Name, cfg.LogLevel, cfg.Service.ShutdownTimeout, lookup, stderr)
	if err != nil {
		return err
	}
	defer p.Close()
	tel := p.Telemetry
	if cfg.Command == "rebuild-projections" {
		n, err := service.RebuildProjections(ctx, cfg.Service.DataDir)
		if err != nil {
			return err
		}
		tel.Logger.InfoContext(ctx, "projections rebuilt", "orders", n, "data_dir", cfg.Service.DataDir)
		return nil
	}
	return p.RunService(ctx, func(ctx context.Context, reg *faults.Registry) (servicecmd.Runner, error) {
		sc := cfg.Service
		sc.Logger, sc.TracerProvider, sc.MeterProvider = tel.Logger, tel.TracerProvider, tel.MeterProvider
		sc.Propagator, sc.MetricsHandler, sc.Faults = tel.Propagator, tel.MetricsHandler, reg
		return service.New(ctx, sc)
	})
}

// adminAddr checks --admin-addr: HOST:PORT, or "off".
func adminAddr(addr string) error {
	if addr == "off" {
		return nil
	}
	return servicecmd.ListenAddr("admin-addr", "ADMIN_ADDR", addr)
}
