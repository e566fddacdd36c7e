// Command payment is orderflow's payment service: a simulated gateway that
// charges each order at most once, refunds, and keeps a ledger to audit. It
// consumes payment.commands (ChargePayment, RefundPayment) and emits
// payment.events (PaymentCharged, PaymentDeclined, PaymentRefunded) through
// its outbox.
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
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/telemetry"
)

const serviceName = "payment"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, serviceName+":", err)
		os.Exit(1)
	}
}

// config is the service's command line, each flag falling back to an
// environment variable.
type config struct {
	QueueURL    string
	DataDir     string
	HTTPAddr    string
	Concurrency int
	MaxAttempts int
	LogLevel    slog.Level
}

// dbPath is the service's own SQLite file.
func (c config) dbPath() string { return filepath.Join(c.DataDir, serviceName+".db") }

func parseConfig(args []string, lookup func(string) (string, bool), out io.Writer) (config, error) {
	env := func(name, def string) string {
		if v, ok := lookup(name); ok && v != "" {
			return v
		}
		return def
	}
	envInt := func(name string, def int) int {
		if n, err := strconv.Atoi(env(name, "")); err == nil {
			return n
		}
		return def
	}
	var c config
	var level string
	fs := flag.NewFlagSet(serviceName, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.QueueURL, "queue-url", env("QUEUE_URL", "sqlite://data/queue.db"), "shared queue: sqlite://PATH or postgres://… (env QUEUE_URL)")
	fs.StringVar(&c.DataDir, "data-dir", env("DATA_DIR", "data"), "directory of the service's own database, "+serviceName+".db (env DATA_DIR)")
	fs.StringVar(&c.HTTPAddr, "http-addr", env("HTTP_ADDR", "127.0.0.1:8082"), "admin and state HTTP address; loopback by default (env HTTP_ADDR)")
	fs.IntVar(&c.Concurrency, "concurrency", envInt("CONCURRENCY", 4), "commands handled at once (env CONCURRENCY)")
	fs.IntVar(&c.MaxAttempts, "max-attempts", envInt("MAX_ATTEMPTS", 5), "deliveries of a failing command before it is dead-lettered (env MAX_ATTEMPTS)")
	fs.StringVar(&level, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: %s [flags]\n\nThe %s service of orderflow: simulated charges and refunds, with a ledger.\n"+
			"It consumes %s and emits %s through its outbox; admin API on --http-addr.\n\nFlags:\n",
			serviceName, serviceName, "payment.commands", "payment.events")
		fs.PrintDefaults()
		usageFaults(out)
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return config{}, fmt.Errorf("--log-level: %w", err)
	}
	if c.Concurrency < 1 || c.MaxAttempts < 1 {
		return config{}, errors.New("--concurrency and --max-attempts must be at least 1")
	}
	return c, nil
}

func usageFaults(out io.Writer) {
	fmt.Fprintf(out, "\nFault flags (environment at start, PUT /faults/NAME at run time; %s_NAME overrides NAME):\n",
		strings.ToUpper(serviceName))
	for _, s := range faults.ServiceFlags(serviceName) {
		fmt.Fprintf(out, "  %-30s %-8s %s\n", s.EnvName(), s.Type, s.Description)
	}
	fmt.Fprintf(out, "\nTelemetry: the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER=none, …).\n")
}

func run(ctx context.Context, args []string, lookup func(string) (string, bool)) error {
	cfg, err := parseConfig(args, lookup, os.Stderr)
	if err != nil {
		return err
	}
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: serviceName, LogLevel: cfg.LogLevel})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			tel.Logger.Warn("telemetry shutdown", slog.Any("error", err))
		}
	}()
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags(serviceName), Logger: tel.Logger})
	if err != nil {
		return err
	}
	if err := reg.LoadEnv(strings.ToUpper(serviceName)+"_", lookup); err != nil {
		return fmt.Errorf("fault flags: %w", err)
	}
	svc, err := newService(ctx, cfg, tel, reg)
	if err != nil {
		return err
	}
	return svc.run(ctx)
}
