// Package servicecmd is the command line of the worker service binaries
// (inventory, payment, shipping): the flags they share, each falling back to
// an environment variable, a --help that lists the fault flags, and the
// telemetry and fault-flag set-up around running the service. The order
// service, whose command line is its own, shares that set-up (Process).
//
//	var command = servicecmd.Command{
//		Name: "payment", DefaultHTTPAddr: "127.0.0.1:8082", …,
//		Open: service.New, // func(ctx, servicehost.Config) (*servicehost.Host, error)
//	}
//
//	func run(ctx context.Context, args []string, lookup servicecmd.LookupFunc) error {
//		return command.Run(ctx, args, lookup, os.Stderr) // until ctx ends
//	}
package servicecmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/pkg/telemetry"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/retry"
	"github.com/orderflow/orderflow/queue/sqlite/cmalloc"
)

// LookupFunc reads an environment variable (os.LookupEnv in main).
type LookupFunc func(name string) (string, bool)

// EnvFunc returns the environment variable name, or def when it is unset
// or empty.
type EnvFunc func(name, def string) string

// Command describes a worker service's command line.
type Command struct {
	// Name is the service's name: the flag set's, the fault flags'
	// (NAME_FLAG overrides FLAG) and telemetry's service.name.
	Name string
	// DefaultHTTPAddr is the default of --http-addr.
	DefaultHTTPAddr string
	// Summary says what the service holds, after "The NAME service of
	// orderflow: ", e.g. "stock per SKU, reservations per order.".
	Summary string
	// Consumes and Emits name the topics, for --help.
	Consumes, Emits string
	// Flags, when set, adds the service's own flags to fs; their
	// defaults may come from env.
	Flags func(fs *flag.FlagSet, env EnvFunc)
	// Check, when set, reports what is wrong with the values of the
	// service's own flags once they are parsed (Catalog, for one); Parse
	// joins its error to the shared flags' errors, so each of its errors
	// names the flag and its environment variable as theirs do.
	Check func() error
	// Open builds the service from its config (the service package's New).
	Open func(ctx context.Context, cfg servicehost.Config) (*servicehost.Host, error)
}

// MaxAbandonedUsage is the --max-abandoned flag's usage, the order
// service's too.
const MaxAbandonedUsage = "runs alone of a message that may end with the service dying (a crash, an OOM kill) before the message is dead-lettered (reason abandoned) instead of run again; the crash that first marks it, when it ran beside others, is not counted: 2 means 3 crashes in all (env MAX_ABANDONED)"

// ShutdownTimeoutUsage is the --shutdown-timeout flag's usage, the order
// service's too.
const ShutdownTimeoutUsage = "bound of the whole graceful stop after SIGTERM or SIGINT, from the signal to the exit: running requests and handlers get 70% of it, then what they committed is forwarded and the queue closed, the telemetry's last export last; a second signal stops at once; must be positive (env SHUTDOWN_TIMEOUT)"

// DedupRetentionUsage is the --dedup-retention flag's usage, the order
// service's too.
const DedupRetentionUsage = "how long the ids of the messages handled (and the service's Idempotency-Keys) are remembered, so that a duplicate is dropped: each message handled keeps about 50 bytes in the service's database for this long; at least 1h (env DEDUP_RETENTION)"

// AllowedHostsUsage is the --allowed-hosts flag's usage, the order
// service's too.
const AllowedHostsUsage = "comma-separated host names (no port) the HTTP servers answer to in the Host header besides IP addresses, localhost and this machine's host name, against DNS rebinding: the names other machines or containers call this service by (env ALLOWED_HOSTS)"

// Config is the parsed command line shared by the worker services.
type Config struct {
	QueueURL string
	DataDir  string
	HTTPAddr string
	// AllowedHosts is --allowed-hosts: comma-separated names, checked
	// and in crossorigin.ParseHosts's form.
	AllowedHosts    string
	Concurrency     int
	MaxAttempts     int
	MaxAbandoned    int
	ShutdownTimeout time.Duration
	DedupRetention  time.Duration
	LogLevel        slog.Level
}

// Parse parses args, each flag falling back to an environment variable
// read through lookup (unset or empty: the default). A variable that does
// not parse is an error naming it, as for the order service: a typo must
// not quietly run the service with the default. So is a value out of
// range, flag or variable: --concurrency or --max-attempts below 1, a
// --shutdown-timeout that is not positive, a --data-dir given empty, an
// --http-addr without a port; and whatever Check reports.
// --help prints the usage to out and returns flag.ErrHelp.
func (c Command) Parse(args []string, lookup LookupFunc, out io.Writer) (Config, error) {
	envs := NewEnvDefaults(lookup)
	env, envInt, envDuration := envs.String, envs.Int, envs.Duration
	var errs []error
	var cfg Config
	var level string
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.QueueURL, "queue-url", env("QUEUE_URL", servicehost.DefaultQueueURL), "shared queue: sqlite://PATH or postgres://… (env QUEUE_URL)")
	fs.StringVar(&cfg.DataDir, "data-dir", env("DATA_DIR", servicehost.DefaultDataDir), "directory of the service's own database, "+c.Name+".db (env DATA_DIR)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", env("HTTP_ADDR", c.DefaultHTTPAddr), "admin and state HTTP address; loopback by default (env HTTP_ADDR)")
	fs.StringVar(&cfg.AllowedHosts, "allowed-hosts", env("ALLOWED_HOSTS", ""), AllowedHostsUsage)
	fs.IntVar(&cfg.Concurrency, "concurrency", envInt("concurrency", "CONCURRENCY", servicehost.DefaultConcurrency), "commands handled at once (env CONCURRENCY)")
	fs.IntVar(&cfg.MaxAttempts, "max-attempts", envInt("max-attempts", "MAX_ATTEMPTS", servicehost.DefaultMaxAttempts), "deliveries of a failing command before it is dead-lettered (env MAX_ATTEMPTS)")
	fs.IntVar(&cfg.MaxAbandoned, "max-abandoned", envInt("max-abandoned", "MAX_ABANDONED", retry.DefaultMaxAbandoned), MaxAbandonedUsage)
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", envDuration("shutdown-timeout", "SHUTDOWN_TIMEOUT", servicehost.DefaultShutdownTimeout), ShutdownTimeoutUsage)
	fs.DurationVar(&cfg.DedupRetention, "dedup-retention", envDuration("dedup-retention", "DEDUP_RETENTION", servicehost.DefaultDedupRetention), DedupRetentionUsage)
	fs.StringVar(&level, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	if c.Flags != nil {
		c.Flags(fs, env)
	}
	fs.Usage = func() { c.usage(fs, out) }
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	errs = append(errs, envs.Err())
	errs = append(errs,
		AllowedHosts(&cfg.AllowedHosts),
		LogLevel(&cfg.LogLevel, level),
		SharedQueue(cfg.QueueURL),
		NotEmpty("data-dir", "DATA_DIR", cfg.DataDir), // servicehost would take "" for its default
		ListenAddr("http-addr", "HTTP_ADDR", cfg.HTTPAddr),
		AtLeastOne("concurrency", "CONCURRENCY", cfg.Concurrency),
		AtLeastOne("max-attempts", "MAX_ATTEMPTS", cfg.MaxAttempts),
		AtLeastOne("max-abandoned", "MAX_ABANDONED", cfg.MaxAbandoned),
		Positive("shutdown-timeout", "SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout), // 0 would quietly be the default
		DedupRetention(cfg.DedupRetention),
	)
	if c.Check != nil {
		errs = append(errs, c.Check())
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func (c Command) usage(fs *flag.FlagSet, out io.Writer) {
	fmt.Fprintf(out, "Usage: %s [flags]\n\nThe %s service of orderflow: %s\n"+
		"It consumes %s and emits %s through its outbox; admin API on --http-addr.\n\nFlags:\n",
		c.Name, c.Name, c.Summary, c.Consumes, c.Emits)
	fs.PrintDefaults()
	FaultFlagsUsage(out, c.Name)
	fmt.Fprintf(out, "\nTelemetry: the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER=none, …).\n")
	fmt.Fprintf(out, "C heap: C_HEAP_TRIM_THRESHOLD=BYTES keeps that much freed C memory for reuse (default 64 MiB; 0 leaves glibc's malloc as it is).\n")
	fmt.Fprintf(out, "Go heap: GOGC defaults to %d here (Go's own default is 100); GOGC in the environment wins.\n", DefaultGCPercent)
}

// FaultFlagsUsage writes the --help section of service's fault flags:
// each flag under the name the admin API knows it by (PUT /faults/NAME
// takes the lower-case name) with the environment variables LoadFaults
// reads for it, the one that wins first. A service's own flags already
// start with its name (PAYMENT_DECLINE_RATE) and have one variable.
func FaultFlagsUsage(out io.Writer, service string) {
	fmt.Fprintf(out, "\nFault flags: set at run time with PUT /faults/NAME {\"value\": …} on the admin API,\n"+
		"at start by the first of the flag's environment variables that is set (%sVAR wins over VAR);\n"+
		"a value is at most %d bytes, without control or bidirectional formatting characters:\n",
		EnvPrefix(service), faults.MaxValueLength)
	for _, s := range faults.ServiceFlags(service) {
		fmt.Fprintf(out, "  %s (%s; env %s)\n      %s\n", s.Name, s.Type, strings.Join(s.EnvNames(EnvPrefix(service)), ", else "), s.Description)
	}
}

// EnvPrefix is the prefix of the environment variables that set service's
// fault flags for it alone: PAYMENT_HANDLER_LATENCY wins over
// HANDLER_LATENCY (faults.Registry.LoadEnv).
func EnvPrefix(service string) string { return strings.ToUpper(service) + "_" }

// Run parses args (see Parse; usage and errors go to stderr), sets up the
// process (StartProcess: telemetry, memory settings), then loads the
// service's fault flags from the environment (whose crash points flush the
// telemetry before they exit), opens the service with Open and runs it
// until ctx ends (Process.RunService); then it flushes telemetry, by the
// end of the stop's bound (StopDeadline). When ctx ends while the service
// is still being opened (a stop during start-up), Run returns nil, the
// failure of the interrupted opening logged at debug level: the stop was
// asked for, and it is done.
func (c Command) Run(ctx context.Context, args []string, lookup LookupFunc, stderr io.Writer) error {
	if c.Open == nil {
		return errors.New("command: open is required")
	}
	cfg, err := c.Parse(args, lookup, stderr)
	if err != nil {
		return err
	}
	p, err := StartProcess(ctx, c.Name, cfg.LogLevel, cfg.ShutdownTimeout, lookup, stderr)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.RunService(ctx, func(ctx context.Context, reg *faults.Registry) (Runner, error) {
		tel := p.Telemetry
		return c.Open(ctx, servicehost.Config{
			QueueURL: cfg.QueueURL, DataDir: cfg.DataDir, HTTPAddr: cfg.HTTPAddr, AllowedHosts: SplitHosts(cfg.AllowedHosts),
			Concurrency: cfg.Concurrency, MaxAttempts: cfg.MaxAttempts, MaxAbandoned: cfg.MaxAbandoned,
			ShutdownTimeout: cfg.ShutdownTimeout, DedupRetention: cfg.DedupRetention,
			Logger: tel.Logger, TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider,
			Propagator: tel.Propagator, MetricsHandler: tel.MetricsHandler, Faults: reg,
		})
	})
}

// StoppedDuringStart reports whether ctx ended, which is why opening a
// service failed with err (its waits, a lock or a server, end with the
// context): a stop asked for during start-up. It then logs that, with err
// at debug level, for the caller to return without an error.
func StoppedDuringStart(ctx context.Context, logger *slog.Logger, err error) bool {
	if ctx.Err() == nil {
		return false
	}
	logger.DebugContext(context.WithoutCancel(ctx), "opening interrupted by the stop", slog.Any("error", err))
	logger.InfoContext(context.WithoutCancel(ctx), "stopped during start-up")
	return true
}

// StopDeadline returns what tells, once the service has stopped, by when
// its last part (the telemetry's export) must be done: shutdownTimeout
// after ctx ended, the bound of the whole stop that the signal began. For
// a service that stopped without ctx ending (a failure), shutdownTimeout
// from then, at most telemetryFlushTimeout.
func StopDeadline(ctx context.Context, shutdownTimeout time.Duration) func() time.Time {
	var mu sync.Mutex
	var ended time.Time
	record := func() {
		mu.Lock()
		defer mu.Unlock()
		if ended.IsZero() {
			ended = time.Now()
		}
	}
	context.AfterFunc(ctx, record)
	return func() time.Time {
		if ctx.Err() == nil {
			return time.Now().Add(min(shutdownTimeout, telemetryFlushTimeout))
		}
		record() // should the AfterFunc not have run yet
		mu.Lock()
		defer mu.Unlock()
		return ended.Add(shutdownTimeout)
	}
}

// telemetryFlushTimeout bounds the telemetry's last export when no stop
// bound applies.
const telemetryFlushTimeout = 5 * time.Second

// KeepFreedCMemory keeps the C memory SQLite frees with the process
// (cmalloc.KeepFreedMemory) with the trim threshold C_HEAP_TRIM_THRESHOLD
// (bytes; default cmalloc.DefaultTrimThreshold; 0 leaves glibc's malloc
// alone), unless glibc's own environment variables choose; it logs the
// outcome at debug level. A value that is not a number of bytes is an
// error, as for the other variables: the service does not start on a
// setting it would ignore.
func KeepFreedCMemory(ctx context.Context, logger *slog.Logger, lookup LookupFunc) error {
	threshold := cmalloc.DefaultTrimThreshold
	if v, ok := lookup("C_HEAP_TRIM_THRESHOLD"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("C_HEAP_TRIM_THRESHOLD: want a number of bytes (0 or more), got %q", v)
		}
		threshold = n
	}
	if threshold == 0 {
		logger.DebugContext(ctx, "C heap left to glibc's defaults (C_HEAP_TRIM_THRESHOLD=0)")
		return nil
	}
	outcome := cmalloc.KeepFreedMemory(lookup, threshold)
	logger.DebugContext(ctx, "C heap trim threshold", "outcome", outcome.String(), "bytes", threshold)
	return nil
}

// DefaultGCPercent is the services' GOGC unless the environment sets one:
// 200, twice Go's default. A service keeps about 1 MiB live, so Go's
// default heap goal is its 4 MiB floor and it collected 25 times a second
// under load; at 200 (an 8 MiB floor) the order service took 7 % less CPU
// per order and the others 3–6 % less, for about 5 MiB more peak RSS each
// and the same idle RSS (docs/benchmarks.md). 400 saved little more for
// twice that memory.
const DefaultGCPercent = 200

// CollectLessOften sets the garbage collector's target percentage to
// DefaultGCPercent unless GOGC is set in the environment (the Go runtime
// applied that one at start, and it stays), and logs the outcome at debug
// level. A GOGC the runtime cannot read is an error: the runtime would
// quietly collect at its own default, 100, neither the value meant nor
// ours.
func CollectLessOften(ctx context.Context, logger *slog.Logger, lookup LookupFunc) error {
	if v, ok := lookup("GOGC"); ok && v != "" {
		if !validGOGC(v) {
			return fmt.Errorf("GOGC: want a percentage (an integer) or off, got %q", v)
		}
		logger.DebugContext(ctx, "GC percent from GOGC", "GOGC", v)
		return nil
	}
	debug.SetGCPercent(DefaultGCPercent)
	logger.DebugContext(ctx, "GC percent", "percent", DefaultGCPercent)
	return nil
}

// validGOGC reports whether the Go runtime reads v as a GOGC: "off", or a
// decimal integer with an optional minus sign that fits 32 bits (the
// runtime takes no plus sign, spaces or other bases).
func validGOGC(v string) bool {
	if v == "off" {
		return true
	}
	digits := strings.TrimPrefix(v, "-")
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return false
	}
	_, err := strconv.ParseInt(v, 10, 32)
	return err == nil
}

// StartTelemetry sets up telemetry for service name, logging JSON to
// logWriter from level on, installs it as the process's OpenTelemetry
// globals (telemetry.SetGlobals: the SDK's own errors, such as a metric
// collection that failed, are then logged as JSON records of the service
// rather than as plain lines on stderr) and returns it with its shutdown,
// which flushes it by deadline (at most telemetryFlushTimeout from the
// call, even after ctx ended; see StopDeadline). Call it once per process,
// from main: services run together in one process (e2e/inprocess) set up
// their telemetry without it.
func StartTelemetry(ctx context.Context, name string, level slog.Level, logWriter io.Writer) (*telemetry.Telemetry, func(deadline time.Time), error) {
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: name, LogLevel: level, LogWriter: logWriter})
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: %w", err)
	}
	tel.SetGlobals()
	shutdown := func(deadline time.Time) {
		sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		defer cancel()
		sctx, cancel2 := context.WithTimeout(sctx, telemetryFlushTimeout)
		defer cancel2()
		if err := tel.Shutdown(sctx); err != nil {
			tel.Logger.Warn("telemetry shutdown", slog.Any("error", err))
		}
	}
	return tel, shutdown, nil
}

// LoadFaults builds the fault flags of service name
// (faults.ServiceFlags) and sets them from the environment read through
// lookup; NAME_FLAG overrides FLAG. Its crash points log to logger and
// call flush (faults.Config.Flush: the service's
// telemetry.Telemetry.ForceFlush, or nil) before the process exits, so
// that the spans the process finished last, of every order, are not lost
// with it.
func LoadFaults(name string, logger *slog.Logger, flush func(context.Context) error, lookup func(name string) (string, bool)) (*faults.Registry, error) {
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags(name), Logger: logger, Flush: flush})
	if err != nil {
		return nil, err
	}
	if err := reg.LoadEnv(EnvPrefix(name), lookup); err != nil {
		return nil, fmt.Errorf("fault flags: %w", err)
	}
	return reg, nil
}

// SharedQueue refuses, naming --queue-url and QUEUE_URL, a queue URL
// that is not one (queue.ValidateURL: an unknown scheme, bad parameters)
// and one the service cannot share with the others: memory:// is a queue
// inside one process (for services run together in one, e2e/inprocess),
// so a service started alone on it would receive nothing and its messages
// would go nowhere.
func SharedQueue(url string) error {
	if err := queue.ValidateURL(url); err != nil {
		return fmt.Errorf("--queue-url (QUEUE_URL): %w", err)
	}
	if queue.IsInProcess(url) {
		return fmt.Errorf("--queue-url (QUEUE_URL) %s is a queue inside one process, which no other service can reach; use sqlite://PATH or postgres://…", url)
	}
	return nil
}

// Catalog refuses, naming --catalog and CATALOG_FILE, a catalogue file
// the service would not start on: one that cannot be read or is not a
// valid catalogue (catalog.Load). "" (the built-in catalogue) is valid.
// It only checks: the service reads the file again when it opens.
func Catalog(path string) error {
	if _, err := catalog.Load(path); err != nil {
		return fmt.Errorf("--catalog (CATALOG_FILE): %w", err)
	}
	return nil
}
