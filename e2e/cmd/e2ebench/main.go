// Command e2ebench is orderflow's end-to-end benchmark. In one run it
// measures the whole saga (order → inventory → payment → shipping →
// COMPLETED) on each queue backend:
//
//   - sqlite:   the four services as separate processes on one SQLite queue
//     file (the embedded default);
//   - postgres: the same four processes on a PostgreSQL queue (a fresh
//     database per run), when --postgres-url or ORDERFLOW_TEST_POSTGRES_URL
//     names a server;
//   - memory:   the four services in this one process on Watermill's
//     GoChannel (memory://), the upper bound, via e2e/inprocess.
//
// For each it reports the sustained throughput (orders/s), the latency
// place→terminal at a fixed rate (p50/p99), ratios to GoChannel, the RSS of
// every process when idle and at its peak, CPU time per process, and the
// time from start to the first order served. Run "e2ebench --help".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/queue/sqlite/cmalloc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The in-process variants run the services here: tune the C heap as
	// their binaries do (pkg/servicecmd).
	cmalloc.KeepFreedMemory(os.LookupEnv, cmalloc.DefaultTrimThreshold)
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "e2ebench:", err)
		os.Exit(1)
	}
}

type options struct {
	Duration        time.Duration
	LatencyDuration time.Duration
	LatencyRate     float64
	Concurrency     int
	MaxPending      int
	PostgresURL     string
	Variants        []string
	BinDir          string
	WorkDir         string
	Keep            bool
	JSONOut         string
	MarkdownOut     string
	CPUProfileDir   string
	Env             []string
	Progress        bool
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

var allVariants = []string{"sqlite", "postgres", "memory"}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var variants string
	var env stringList
	fs := flag.NewFlagSet("e2ebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "length of the max-throughput phase")
	fs.IntVar(&o.Concurrency, "concurrency", 32, "clients placing back to back in the max-throughput phase")
	fs.IntVar(&o.MaxPending, "max-pending", 1000, "orders not yet terminal at most in the max-throughput phase (closed loop on sagas; 0: no limit)")
	fs.DurationVar(&o.LatencyDuration, "latency-duration", 20*time.Second, "length of the fixed-rate latency phase")
	fs.Float64Var(&o.LatencyRate, "latency-rate", 200, "orders/s of the latency phase")
	fs.StringVar(&o.PostgresURL, "postgres-url", os.Getenv("ORDERFLOW_TEST_POSTGRES_URL"), "PostgreSQL server for the postgres variant; a fresh database is created on it and dropped (env ORDERFLOW_TEST_POSTGRES_URL)")
	fs.StringVar(&variants, "variants", strings.Join(allVariants, ","), "which variants to run, comma-separated: sqlite, postgres, memory")
	fs.StringVar(&o.BinDir, "bin-dir", "", "use the service binaries in this directory instead of building them")
	fs.StringVar(&o.WorkDir, "work-dir", "", "directory for data and logs (default a temporary one, removed unless --keep)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the work directory (databases, service logs)")
	fs.StringVar(&o.JSONOut, "json-out", "", "also write every figure as JSON to this file")
	fs.StringVar(&o.MarkdownOut, "md-out", "", "also write the tables as Markdown to this file")
	fs.StringVar(&o.CPUProfileDir, "cpuprofile-dir", "", "write CPU profiles of the throughput phase here: VARIANT-SERVICE.pprof of each service process (from its admin API's /debug/pprof), memory.pprof, and sqlite-inprocess.pprof from an extra in-process run on SQLite, with sqlite-inprocess.block.pprof: where goroutines waited")
	fs.Var(&env, "env", "KEY=VALUE passed to every service process (repeatable), e.g. --env CONCURRENCY=16")
	fs.BoolVar(&o.Progress, "progress", true, "show loadgen's progress on stderr")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: e2ebench [flags]

The end-to-end benchmark of orderflow. For each variant:
  sqlite    the four service binaries as processes on one SQLite queue file
  postgres  the same on a PostgreSQL queue (fresh database; needs --postgres-url)
  memory    the four services in this process on GoChannel (the upper bound)
it starts the system, times the first order, then runs loadgen twice:
  latency     --latency-rate orders/s for --latency-duration: p50/p90/p99 place→terminal
  throughput  --concurrency clients, --max-pending sagas open, for --duration
and prints orders/s, latency, ratios to GoChannel, each process's RSS (idle
and peak, from /proc) and CPU time. The services get a catalogue with stock
no run exhausts, tracing off (OTEL_TRACES_EXPORTER=none), LOG_LEVEL=warn and,
as go tool task run starts them, GOMAXPROCS=1 (unless GOMAXPROCS is set).

Examples:
  e2ebench                                        # all variants, 20 s phases
  e2ebench --variants sqlite --duration 10s --latency-duration 10s
  e2ebench --cpuprofile-dir prof --md-out bench.md --json-out bench.json
  go tool pprof -top prof/sqlite-inprocess.pprof  # where the time goes

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, v := range strings.Split(variants, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if !slices.Contains(allVariants, v) {
			return options{}, fmt.Errorf("--variants: unknown %q (want sqlite, postgres, memory)", v)
		}
		o.Variants = append(o.Variants, v)
	}
	if len(o.Variants) == 0 {
		return options{}, errors.New("--variants names nothing")
	}
	// By default the postgres variant is skipped without a server (the
	// report says so); asked for by name, it needs one.
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "variants" })
	if explicit && slices.Contains(o.Variants, "postgres") && o.PostgresURL == "" {
		return options{}, errors.New("--variants postgres needs --postgres-url (or ORDERFLOW_TEST_POSTGRES_URL)")
	}
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return options{}, fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
	}
	o.Env = env
	if o.Duration <= 0 || o.LatencyDuration <= 0 || o.LatencyRate <= 0 || o.Concurrency <= 0 {
		return options{}, errors.New("durations, rate and concurrency must be positive")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	b := &bench{opts: o, log: stderr, tty: isTerminal(os.Stderr)}
	res, err := b.run(ctx)
	if res == nil {
		return err
	}
	md := res.markdown()
	fmt.Fprint(stdout, md)
	if o.MarkdownOut != "" {
		if werr := os.WriteFile(o.MarkdownOut, []byte(md), 0o644); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if o.JSONOut != "" {
		data, jerr := json.MarshalIndent(res, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(o.JSONOut, append(data, '\n'), 0o644)
		}
		err = errors.Join(err, jerr)
	}
	return err
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type bench struct {
	opts options
	log  io.Writer
	tty  bool
	dir  string
	bins string
	cat  string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "e2ebench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context) (*results, error) {
	res := &results{
		StartedAt: time.Now().UTC(), Options: b.opts, Host: hostInfo(),
		// The environment startSystem gives each service, but for the
		// per-process variables it adds.
		ServiceGOMAXPROCS: serviceGOMAXPROCS(append(withDefaultGOMAXPROCS(os.Environ(), os.LookupEnv), b.opts.Env...)),
	}
	res.Options.PostgresURL = redact(b.opts.PostgresURL)
	b.dir = b.opts.WorkDir
	if b.dir == "" {
		d, err := os.MkdirTemp("", "e2ebench-")
		if err != nil {
			return nil, err
		}
		b.dir = d
		if !b.opts.Keep {
			defer os.RemoveAll(d)
		}
	} else if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return nil, err
	}
	if b.opts.Keep {
		b.logf("work directory %s (kept)", b.dir)
	}
	if cps, err := probeCommits(ctx, b.dir); err != nil {
		b.logf("SQLite commit probe: %v", err)
	} else {
		res.Host.CommitsPerSecond = cps
		b.logf("SQLite single-row commits/s on this host: %.0f", cps)
	}
	cpuStart, cpuOK := readCPUTimes()
	b.cat = filepath.Join(b.dir, "catalog.json")
	if err := writeCatalog(b.cat); err != nil {
		return nil, err
	}
	needBins := slices.Contains(b.opts.Variants, "sqlite") || slices.Contains(b.opts.Variants, "postgres")
	b.bins = b.opts.BinDir
	if needBins && b.bins == "" {
		b.bins = filepath.Join(b.dir, "bin")
		b.logf("building the four services…")
		start := time.Now()
		if err := buildBinaries(ctx, b.bins); err != nil {
			return nil, err
		}
		b.logf("built in %.1fs", time.Since(start).Seconds())
	}

	var errs []error
	for _, v := range b.opts.Variants {
		if ctx.Err() != nil {
			break
		}
		var r variantResult
		switch v {
		case "sqlite":
			r = b.processes(ctx, "sqlite", "SQLite, 4 processes", "sqlite://"+filepath.Join(b.dir, "sqlite", "queue.db"), nil)
		case "postgres":
			if b.opts.PostgresURL == "" {
				r = variantResult{Key: v, Name: "PostgreSQL, 4 processes", Skipped: "no --postgres-url / ORDERFLOW_TEST_POSTGRES_URL"}
				break
			}
			url, drop, err := freshDatabase(ctx, b.opts.PostgresURL)
			if err != nil {
				r = variantResult{Key: v, Name: "PostgreSQL, 4 processes", Error: err.Error()}
				break
			}
			r = b.processes(ctx, "postgres", "PostgreSQL, 4 processes", url, drop)
		case "memory":
			r = b.inProcess(ctx, "memory", "GoChannel, 1 process", "memory://", filepath.Join(b.opts.CPUProfileDir, "memory.pprof"))
		}
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("%s: %s", v, r.Error))
		}
		res.Variants = append(res.Variants, r)
	}
	if b.opts.CPUProfileDir != "" && ctx.Err() == nil && slices.Contains(b.opts.Variants, "sqlite") {
		// Where the time goes on SQLite, all in one profile: the same
		// saga with all four services in this process on a SQLite queue.
		r := b.inProcess(ctx, "sqlite-inprocess", "SQLite, 1 process (profiled)",
			"sqlite://"+filepath.Join(b.dir, "sqlite-inprocess", "queue.db"), filepath.Join(b.opts.CPUProfileDir, "sqlite-inprocess.pprof"))
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("sqlite-inprocess: %s", r.Error))
		}
		res.Variants = append(res.Variants, r)
	}
	res.FinishedAt = time.Now().UTC()
	res.Host.CPUPressureEnd = cpuPressure()
	if cpuEnd, ok := readCPUTimes(); ok && cpuOK {
		if steal, ok := stealPercent(cpuStart, cpuEnd); ok {
			res.Host.StealPercent = &steal
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, errors.New("interrupted"))
	}
	return res, errors.Join(errs...)
}

// processes runs one variant on the four service binaries.
func (b *bench) processes(ctx context.Context, key, name, queueURL string, cleanup func()) (r variantResult) {
	r = variantResult{Key: key, Name: name, QueueURL: redact(queueURL)}
	if cleanup != nil {
		defer cleanup()
	}
	dir := filepath.Join(b.dir, key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.Error = err.Error()
		return r
	}
	b.logf("%s: starting the four services on %s", name, redact(queueURL))
	sys, err := startSystem(systemConfig{BinDir: b.bins, Dir: dir, QueueURL: queueURL, Catalog: b.cat, Env: b.opts.Env})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer sys.stop(15 * time.Second)
	ph := phases{b: b, url: sys.orderURL(), started: sys.started, ready: sys.ready, exited: sys.exited,
		stats: func() map[string]procStats { return sys.stats() }}
	if dir := b.opts.CPUProfileDir; dir != "" {
		ph.profileProcs = func(ctx context.Context, d time.Duration) func() error {
			b.logf("%s: CPU profiles of the four processes in %s", name, filepath.Join(dir, key+"-SERVICE.pprof"))
			return sys.profile(ctx, dir, key, d)
		}
	}
	ph.run(ctx, &r)
	return r
}
