// Command loadgen places orders against orderflow's order API at a target
// rate or concurrency, waits until each is terminal and reports
// completed / cancelled / rejected counts, orders/s and place→terminal
// latency percentiles, as text and optionally as JSON.
//
// Run "loadgen --help" for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/e2e/loadgen"
	"github.com/orderflow/orderflow/pkg/catalog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, isTerminal(os.Stderr)); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// errIncomplete: the run was not interrupted, yet some orders were not
// placed or did not end within --wait. run returns it (wrapped) after the
// report, so that scripts see the failure in the exit status.
var errIncomplete = errors.New("not every order was placed and ended")

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type options struct {
	cfg      loadgen.Config
	jsonOut  string
	catalog  string
	quiet    bool
	progress string
	// readyTimeout is --ready-timeout, where 0 skips the wait (for the
	// library, 0 is its default and a negative value skips it).
	readyTimeout time.Duration
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	c := &o.cfg
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", envOr("ORDER_URL", "http://127.0.0.1:8080"), "order API base URL (env ORDER_URL)")
	fs.Float64Var(&c.Rate, "rate", 0, "orders placed per second, open loop; 0 places as fast as --concurrency allows")
	fs.IntVar(&c.Concurrency, "concurrency", 0, "clients placing back to back (default 16); with --rate, the cap of requests in flight (default 512)")
	fs.IntVar(&c.MaxPending, "max-pending", 0, "hold placing back while this many orders are not terminal (a closed loop on whole sagas, for sustained throughput); 0 means no limit")
	fs.DurationVar(&c.Duration, "duration", 0, "how long to place orders (e.g. 30s)")
	fs.IntVar(&c.Count, "count", 0, "how many orders to place; with --duration, whichever comes first")
	fs.DurationVar(&c.WaitTimeout, "wait", 60*time.Second, "how long to wait for terminal states after the last order; orders still pending count as timed out")
	fs.DurationVar(&c.PollInterval, "poll", 200*time.Millisecond, "shortest wait between two looks for terminal orders (the wait grows to a tenth of the oldest pending order's age, at most 2s)")
	fs.IntVar(&c.MaxLines, "max-lines", 3, "an order has 1..N distinct SKUs")
	fs.IntVar(&c.MaxQuantity, "max-quantity", 3, "each line orders 1..N units")
	fs.StringVar(&o.catalog, "catalog", envOr("CATALOG_FILE", ""), "JSON catalogue to draw SKUs from, as the services take it; default the built-in one (env CATALOG_FILE)")
	fs.Uint64Var(&c.Seed, "seed", 0, "random seed of the orders; 0 picks one")
	fs.StringVar(&c.RunID, "run-id", "", "prefix of idempotency keys and customer ids; default random (reusing one replays its orders)")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 10*time.Second, "first wait this long for the order API's /readyz to answer 200, and give up saying why if it does not; 0 skips the wait")
	fs.StringVar(&o.jsonOut, "json-out", "", "also write the report as JSON to this file")
	fs.StringVar(&o.progress, "progress", "auto", "progress on stderr: auto (a live line on a terminal, a line every 5s otherwise), line, plain or none")
	fs.BoolVar(&o.quiet, "q", false, "no progress (same as --progress none)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: loadgen [flags]

Places orders against orderflow's order API (POST /orders, random SKUs and
quantities from the catalogue, one Idempotency-Key each), either at a fixed
rate (--rate, open loop) or with a fixed number of clients placing back to
back (--concurrency), for --duration or --count orders. Then it waits for
every order to reach a terminal state and prints:

  placed / place errors / refused (see below),
  completed / cancelled / rejected / timed out waiting,
  orders/s (terminal orders from the first placed_at to the last finished_at),
  latency place→terminal p50/p90/p99/max (the server's placed_at → finished_at),
  and the round trip of POST /orders.

Terminal orders are found with GET /orders?status=…&placed_since=… pages
(500 orders each, back to the oldest order still pending), not one request
per order, so it keeps up at thousands of orders/s; while orders take long,
it looks every tenth of the oldest one's age (waiting between --poll and
max(--poll, 2s)), so that the looking does not load a saturated system.
Ctrl-C stops placing, takes one last look and prints what finished.

Before placing anything it waits up to --ready-timeout for the order API's
GET /readyz to answer 200 (a system still starting), and stops there with
the reason if it does not (a wrong --url, a system not running).

Exit status: 0 when every order was placed and reached a terminal state
(completed, cancelled and rejected all count: they are the saga's answers);
1 when an order could not be placed (place errors) or timed out waiting,
after the report is printed and --json-out written; 1 for bad flags, when
the order API is not ready within --ready-timeout, or when looking for
terminal orders fails. Interrupted (Ctrl-C or SIGTERM): 0 after
the report of what finished, whatever it counts ("(interrupted)" on the
timed-out line, "interrupted": true in JSON).

A failed POST /orders is sent again with the same Idempotency-Key, so it
never places an order twice. A refusal, 503 or 429 with a Retry-After (the
order service's answer while MAX_OPEN_ORDERS orders are open), is sent again
once the wait it asks for is over (seconds or an HTTP date, at most 5s), as
often as it is refused, for as long as placing goes on: until --duration
ends, or with --count alone for --wait after its first refusal. "refused" in the
report counts these answers: the system pushing back, not errors. An order
still refused when placing ends is a place error. With --rate, new orders
keep their schedule meanwhile: an order waiting to be sent again does not
count against --concurrency, so the retries come on top of the offered rate
and neither slow the schedule down nor make it send a burst later. Other
failures (no answer, other 5xx, 503 without Retry-After) are tried twice
more, 50ms and 100ms apart, then counted as place errors.

Examples:
  loadgen --rate 200 --duration 30s                 # latency at a steady 200 orders/s
  loadgen --concurrency 32 --max-pending 1000 --duration 20s
                                                    # as many as the system sustains
  loadgen --count 1000 --json-out report.json       # 1,000 orders, report as JSON too

The built-in catalogue stocks few units (SKU-5: 10); a long run against a
fresh system rejects most orders once stock runs out. Start the services
and loadgen with the same --catalog (CATALOG_FILE) of larger stock to
measure completed sagas.

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
	if err := checkFlags(fs, c); err != nil {
		return options{}, err
	}
	switch {
	case o.readyTimeout < 0:
		return options{}, fmt.Errorf("--ready-timeout %s: must not be negative (0 skips the wait)", o.readyTimeout)
	case o.readyTimeout == 0:
		c.ReadyTimeout = -1
	default:
		c.ReadyTimeout = o.readyTimeout
	}
	if o.quiet {
		o.progress = "none"
	}
	switch o.progress {
	case "auto", "line", "plain", "none":
	default:
		return options{}, fmt.Errorf("--progress %q: want auto, line, plain or none", o.progress)
	}
	return o, nil
}

// checkFlags rejects values the flags take but loadgen cannot use, each
// naming its flag: negative numbers and durations, and a 0 where the
// library would take 0 for its default instead of what was asked.
func checkFlags(fs *flag.FlagSet, c *loadgen.Config) error {
	var errs []error
	bad := func(name, why string) {
		errs = append(errs, fmt.Errorf("--%s %s: %s", name, fs.Lookup(name).Value, why))
	}
	if math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		bad("rate", "must be a number of orders per second")
	} else if c.Rate < 0 {
		bad("rate", "must not be negative")
	}
	for _, f := range []struct {
		name string
		neg  bool
	}{
		{"concurrency", c.Concurrency < 0},
		{"max-pending", c.MaxPending < 0},
		{"duration", c.Duration < 0},
		{"count", c.Count < 0},
	} {
		if f.neg {
			bad(f.name, "must not be negative")
		}
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"max-lines", c.MaxLines}, {"max-quantity", c.MaxQuantity}} {
		if f.n < 1 {
			bad(f.name, "must be at least 1")
		}
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"wait", c.WaitTimeout}, {"poll", c.PollInterval}} {
		if f.d <= 0 {
			bad(f.name, "must be positive")
		}
	}
	if len(errs) == 0 && c.Duration == 0 && c.Count == 0 {
		errs = append(errs, errors.New("set --duration or --count (see --help)"))
	}
	return errors.Join(errs...)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, tty bool) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.catalog != "" {
		if o.cfg.Catalog, err = catalog.Load(o.catalog); err != nil {
			return err
		}
	}
	switch o.progress {
	case "auto":
		o.cfg.Progress, o.cfg.ProgressTTY = stderr, tty
	case "line":
		o.cfg.Progress, o.cfg.ProgressTTY = stderr, true
	case "plain":
		o.cfg.Progress = stderr
	}
	rep, runErr := loadgen.Run(ctx, o.cfg)
	if rep.StartedAt.IsZero() {
		return runErr
	}
	if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if o.jsonOut != "" {
		if err := rep.WriteJSONFile(o.jsonOut); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if runErr != nil {
		return runErr
	}
	return incomplete(rep)
}

// incomplete reports, unless the run was interrupted, the orders that
// were not placed or did not end in time.
func incomplete(rep loadgen.Report) error {
	if rep.Interrupted || rep.PlaceErrors == 0 && rep.TimedOutWaiting == 0 {
		return nil
	}
	var parts []string
	if rep.PlaceErrors > 0 {
		parts = append(parts, fmt.Sprintf("%d not placed (place errors)", rep.PlaceErrors))
	}
	if rep.TimedOutWaiting > 0 {
		parts = append(parts, fmt.Sprintf("%d not terminal within --wait (timed out waiting)", rep.TimedOutWaiting))
	}
	return fmt.Errorf("%w: %s", errIncomplete, strings.Join(parts, ", "))
}
