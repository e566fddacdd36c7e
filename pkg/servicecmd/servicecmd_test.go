package servicecmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/pkg/servicecmd"
	"github.com/orderflow/orderflow/pkg/servicehost"
)

var command = servicecmd.Command{
	Name: "payment", DefaultHTTPAddr: "127.0.0.1:8082", Summary: "charges.",
	Consumes: "payment.commands", Emits: "payment.events",
}

func lookupIn(env map[string]string) servicecmd.LookupFunc {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestParse(t *testing.T) {
	defaults := servicecmd.Config{QueueURL: "sqlite://data/queue.db", DataDir: "data", HTTPAddr: "127.0.0.1:8082",
		Concurrency: 4, MaxAttempts: 5, MaxAbandoned: 2, ShutdownTimeout: 10 * time.Second, DedupRetention: 7 * 24 * time.Hour, LogLevel: slog.LevelInfo}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want servicecmd.Config
	}{
		{"defaults", nil, nil, defaults},
		{"flags", []string{"--queue-url", "postgres://u@h/db", "--data-dir", "x", "--http-addr", "127.0.0.1:0",
			"--concurrency", "8", "--max-attempts", "2", "--max-abandoned", "1", "--shutdown-timeout", "3s", "--dedup-retention", "48h", "--log-level", "warn"},
			nil, servicecmd.Config{QueueURL: "postgres://u@h/db", DataDir: "x", HTTPAddr: "127.0.0.1:0",
				Concurrency: 8, MaxAttempts: 2, MaxAbandoned: 1, ShutdownTimeout: 3 * time.Second, DedupRetention: 48 * time.Hour, LogLevel: slog.LevelWarn}},
		{"environment, a flag wins", []string{"--data-dir", "flag-wins"},
			map[string]string{"QUEUE_URL": "sqlite:///tmp/q.db", "DATA_DIR": "/tmp/d", "HTTP_ADDR": "127.0.0.1:9",
				"CONCURRENCY": "2", "MAX_ATTEMPTS": "7", "MAX_ABANDONED": "4", "SHUTDOWN_TIMEOUT": "1m", "DEDUP_RETENTION": "1h", "LOG_LEVEL": "debug"},
			servicecmd.Config{QueueURL: "sqlite:///tmp/q.db", DataDir: "flag-wins", HTTPAddr: "127.0.0.1:9",
				Concurrency: 2, MaxAttempts: 7, MaxAbandoned: 4, ShutdownTimeout: time.Minute, DedupRetention: time.Hour, LogLevel: slog.LevelDebug}},
		{"empty values fall back to the defaults", nil,
			map[string]string{"CONCURRENCY": "", "MAX_ATTEMPTS": "", "MAX_ABANDONED": "", "SHUTDOWN_TIMEOUT": "", "DEDUP_RETENTION": "", "QUEUE_URL": "",
				"DATA_DIR": "", "HTTP_ADDR": ""}, defaults},
		{"an address without a host is every interface's", []string{"--http-addr", ":8082"}, nil,
			func() servicecmd.Config { c := defaults; c.HTTPAddr = ":8082"; return c }()},
		{"allowed hosts", nil, map[string]string{"ALLOWED_HOSTS": " Payment, payment.internal. ,"},
			func() servicecmd.Config { c := defaults; c.AllowedHosts = "payment,payment.internal"; return c }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := command.Parse(tc.args, lookupIn(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A variable that does not parse stops the start with an error naming it
// and its flag, as the order service does, instead of running with the
// default.
func TestParseRejectsBadEnvironment(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // in the error
	}{
		{"concurrency", map[string]string{"CONCURRENCY": "ten"}, []string{`--concurrency (CONCURRENCY="ten"): strconv.Atoi: parsing "ten": invalid syntax`}},
		{"max attempts", map[string]string{"MAX_ATTEMPTS": "5x"}, []string{`--max-attempts (MAX_ATTEMPTS="5x"): `}},
		{"shutdown timeout", map[string]string{"SHUTDOWN_TIMEOUT": "10"}, []string{`--shutdown-timeout (SHUTDOWN_TIMEOUT="10"): time: missing unit in duration "10"`}},
		{"log level", map[string]string{"LOG_LEVEL": "verbose"}, []string{`--log-level (LOG_LEVEL): slog: level string "verbose": unknown name`}},
		{"queue URL of no backend", map[string]string{"QUEUE_URL": "bogus://x"}, []string{`--queue-url (QUEUE_URL): queue URL "bogus://x": unsupported scheme "bogus"`}},
		{"all reported at once", map[string]string{"CONCURRENCY": "ten", "MAX_ATTEMPTS": "many"},
			[]string{`--concurrency (CONCURRENCY="ten")`, `--max-attempts (MAX_ATTEMPTS="many")`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := command.Parse(nil, lookupIn(tc.env), io.Discard)
			if err == nil {
				t.Fatalf("got %+v, nil error; want an error naming %v", got, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error: got %q, want it to name %s", err, w)
				}
			}
		})
	}
}

// 0 or a negative count or timeout, where it means nothing, stops the
// start with an error naming the flag, its variable and the value, instead
// of quietly running with the default.
func TestParseRejectsOutOfRangeValues(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"zero shutdown timeout", []string{"--shutdown-timeout", "0"}, nil, "--shutdown-timeout (SHUTDOWN_TIMEOUT) must be positive, got 0s"},
		{"zero shutdown timeout from the environment", nil, map[string]string{"SHUTDOWN_TIMEOUT": "0s"}, "--shutdown-timeout (SHUTDOWN_TIMEOUT) must be positive, got 0s"},
		{"negative shutdown timeout", []string{"--shutdown-timeout", "-1s"}, nil, "--shutdown-timeout (SHUTDOWN_TIMEOUT) must be positive, got -1s"},
		{"zero concurrency", []string{"--concurrency", "0"}, nil, "--concurrency (CONCURRENCY) must be at least 1, got 0"},
		{"negative concurrency from the environment", nil, map[string]string{"CONCURRENCY": "-4"}, "--concurrency (CONCURRENCY) must be at least 1, got -4"},
		{"zero max attempts", nil, map[string]string{"MAX_ATTEMPTS": "0"}, "--max-attempts (MAX_ATTEMPTS) must be at least 1, got 0"},
		{"zero max abandoned", []string{"--max-abandoned", "0"}, nil, "--max-abandoned (MAX_ABANDONED) must be at least 1, got 0"},
		{"dedup retention under an hour", []string{"--dedup-retention", "59m"}, nil, "--dedup-retention (DEDUP_RETENTION) must be at least 1h0m0s, got 59m0s"},
		{"dedup retention under an hour from the environment", nil, map[string]string{"DEDUP_RETENTION": "10m"}, "--dedup-retention (DEDUP_RETENTION) must be at least 1h0m0s, got 10m0s"},
		{"an address that is not HOST:PORT", nil, map[string]string{"HTTP_ADDR": "nope"}, `--http-addr (HTTP_ADDR) "nope" is not HOST:PORT`},
		{"neither host nor port", []string{"--http-addr=:"}, nil, `--http-addr (HTTP_ADDR) ":" has no port`},
		{"a host without a port", nil, map[string]string{"HTTP_ADDR": "0.0.0.0:"}, `--http-addr (HTTP_ADDR) "0.0.0.0:" has no port`},
		{"an empty data dir", []string{"--data-dir="}, nil, "--data-dir (DATA_DIR) is empty"},
		{"an allowed host with a port", []string{"--allowed-hosts", "payment:8082"}, nil, `--allowed-hosts (ALLOWED_HOSTS): host "payment:8082": want a host name or IP address, without port or scheme`},
		{"an empty data dir, separate", []string{"--data-dir", ""}, nil, "--data-dir (DATA_DIR) is empty"},
		{"a queue inside one process", []string{"--queue-url", "memory://"}, nil, "--queue-url (QUEUE_URL) memory:// is a queue inside one process"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := command.Parse(tc.args, lookupIn(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %+v, error %v; want an error containing %q", got, err, tc.want)
			}
		})
	}
}

func TestRangeChecks(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string // "" for nil
	}{
		{"at least one: 1", servicecmd.AtLeastOne("n", "N", 1), ""},
		{"at least one: 0", servicecmd.AtLeastOne("n", "N", 0), "--n (N) must be at least 1, got 0"},
		{"positive: 1ns", servicecmd.Positive("d", "D", 1), ""},
		{"positive: 0", servicecmd.Positive("d", "D", 0), "--d (D) must be positive, got 0s"},
		{"not negative: 0", servicecmd.NotNegative("d", "D", 0), ""},
		{"not negative: -1s", servicecmd.NotNegative("d", "D", -time.Second), "--d (D) must not be negative, got -1s"},
		{"not empty: x", servicecmd.NotEmpty("s", "S", "x"), ""},
		{"not empty: empty", servicecmd.NotEmpty("s", "S", ""), "--s (S) is empty; leave it out for the default"},
		{"listen address: every interface", servicecmd.ListenAddr("a", "A", ":8081"), ""},
		{"listen address: a free port", servicecmd.ListenAddr("a", "A", "127.0.0.1:0"), ""},
		{"listen address: no port", servicecmd.ListenAddr("a", "A", "[::1]:"), `--a (A) "[::1]:" has no port (e.g. 127.0.0.1:8081, :8081; 0 picks a free one)`},
	}
	for _, tc := range tests {
		got := ""
		if tc.err != nil {
			got = tc.err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// writeFile writes data to name in a fresh directory and returns its path.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A catalogue file the service would not start on is refused naming
// --catalog and CATALOG_FILE, as every other flag's bad value is.
func TestCatalog(t *testing.T) {
	good := writeFile(t, "good.json", `[{"sku":"SKU-1","name":"Beans","unit_price_cents":1500,"initial_stock":100}]`)
	notJSON := writeFile(t, "hostname", "vm-1\n")
	missing := filepath.Join(t.TempDir(), "missing.json")
	tests := []struct {
		name, path string
		want       string // the error's beginning; "" for nil
	}{
		{"built-in", "", ""},
		{"valid file", good, ""},
		{"not JSON", notJSON, "--catalog (CATALOG_FILE): " + notJSON + ": parse catalogue: invalid character 'v'"},
		{"missing file", missing, "--catalog (CATALOG_FILE): load catalogue: open " + missing + ": "},
	}
	for _, tc := range tests {
		err := servicecmd.Catalog(tc.path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: got %v, want nil", tc.name, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error beginning %q", tc.name, err, tc.want)
		}
	}
}

// Command.Check's error is reported with the shared flags' errors.
func TestParseReportsCheck(t *testing.T) {
	c := command
	c.Check = func() error { return errors.New("--extra (EXTRA) is wrong") }
	_, err := c.Parse([]string{"--concurrency", "0"}, lookupIn(nil), io.Discard)
	for _, want := range []string{"--extra (EXTRA) is wrong", "--concurrency (CONCURRENCY) must be at least 1, got 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
	c.Check = func() error { return nil }
	if _, err := c.Parse(nil, lookupIn(nil), io.Discard); err != nil {
		t.Errorf("with Check nil error: got %v, want nil", err)
	}
}

func TestParseErrorsAndHelp(t *testing.T) {
	none := lookupIn(nil)
	for _, args := range [][]string{{"--concurrency", "0"}, {"--max-attempts", "0"}, {"--shutdown-timeout", "-1s"}, {"--log-level", "loud"}, {"extra"}, {"--nope"}} {
		if _, err := command.Parse(args, none, io.Discard); err == nil {
			t.Errorf("Parse(%q): got nil error, want one", args)
		}
	}
	var out strings.Builder
	_, err := command.Parse([]string{"--help"}, none, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: got %v, want flag.ErrHelp", err)
	}
	help := strings.ReplaceAll(out.String(), "  -", "  --")
	for _, want := range []string{"Usage: payment [flags]", "The payment service of orderflow: charges.",
		"It consumes payment.commands and emits payment.events", "--queue-url", "QUEUE_URL", "--http-addr",
		"payment.db", "--allowed-hosts", "ALLOWED_HOSTS", "PUT /faults/NAME", "handler_latency", "HANDLER_LATENCY", "CRASH_AFTER_COMMIT", "PAYMENT_DECLINE_RATE", "OTEL_"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help output lacks %q", want)
		}
	}
}

// Each fault flag --help lists is known to the service's admin API by the
// name shown (PUT /faults/NAME answers 200, not 404), and its variables
// are the ones LoadFaults reads, the one that wins first: no
// PAYMENT_PAYMENT_DECLINE_RATE, no upper-case API name.
func TestHelpNamesFaultFlagsAsTheAPIAndTheEnvironmentDo(t *testing.T) {
	line := regexp.MustCompile(`^  ([a-z0-9_]+) \((\w+); env ([A-Z0-9_]+(?:, else [A-Z0-9_]+)*)\)$`)
	// Two valid values of each type, the first told apart from the second.
	values := map[string][2]string{"rate": {"0.5", "0.25"}, "duration": {"1s", "2s"}, "bool": {"true", "false"}, "string": {"SKU-1", "SKU-2"}}
	for _, service := range []string{"order", "inventory", "payment", "shipping"} {
		t.Run(service, func(t *testing.T) {
			c := command
			c.Name = service
			var out strings.Builder
			if _, err := c.Parse([]string{"--help"}, lookupIn(nil), &out); !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("--help: got %v, want flag.ErrHelp", err)
			}
			_, section, ok := strings.Cut(out.String(), "Fault flags")
			if !ok {
				t.Fatalf("--help has no fault flags section:\n%s", out.String())
			}
			var read []string // every variable LoadFaults looks up
			reg, err := servicecmd.LoadFaults(service, slog.New(slog.DiscardHandler), nil, func(name string) (string, bool) {
				read = append(read, name)
				return "", false
			})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := admin.New(admin.Config{Service: service, Faults: reg})
			if err != nil {
				t.Fatal(err)
			}
			var listed, listedEnv []string
			for l := range strings.Lines(section) {
				m := line.FindStringSubmatch(strings.TrimSuffix(l, "\n"))
				if m == nil {
					continue
				}
				name, typ, envs := m[1], m[2], strings.Split(m[3], ", else ")
				listed, listedEnv = append(listed, name), append(listedEnv, envs...)
				v, ok := values[typ]
				if !ok {
					t.Errorf("%s: type %q, want one of rate, duration, bool, string", name, typ)
					continue
				}
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/faults/"+name, strings.NewReader(`{"value":"`+v[0]+`"}`)))
				if rec.Code != http.StatusOK {
					t.Errorf("PUT /faults/%s: got %d %s, want 200", name, rec.Code, rec.Body)
				}
				// Each variable listed is read, and wins over those after it.
				for i, env := range envs {
					set := map[string]string{env: v[0]}
					for _, later := range envs[i+1:] {
						set[later] = v[1]
					}
					r, err := servicecmd.LoadFaults(service, slog.New(slog.DiscardHandler), nil, lookupIn(set))
					if err != nil {
						t.Fatal(err)
					}
					if st, err := r.Get(name); err != nil || st.Source != "env" || st.Value != v[0] {
						t.Errorf("%s with %v: got %+v (%v), want %s from %s", name, set, st, err, v[0], env)
					}
				}
			}
			if got, want := len(listed), len(reg.Specs()); got != want {
				t.Errorf("flags listed as NAME (TYPE; env VAR, else VAR): got %d %v, want %d:\n%s", got, listed, want, section)
			}
			slices.Sort(read)
			slices.Sort(listedEnv)
			if !slices.Equal(listedEnv, read) {
				t.Errorf("variables listed: got %v, want those LoadFaults reads, %v", listedEnv, read)
			}
		})
	}
}

func TestServiceFlags(t *testing.T) {
	var extra string
	c := command
	c.Flags = func(fs *flag.FlagSet, env servicecmd.EnvFunc) {
		fs.StringVar(&extra, "extra", env("EXTRA", "def"), "a service's own flag (env EXTRA)")
	}
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "def"},
		{nil, map[string]string{"EXTRA": "env"}, "env"},
		{[]string{"--extra", "flag"}, map[string]string{"EXTRA": "env"}, "flag"},
	}
	for _, tc := range tests {
		if _, err := c.Parse(tc.args, lookupIn(tc.env), io.Discard); err != nil {
			t.Fatal(err)
		}
		if extra != tc.want {
			t.Errorf("Parse(%q) with %v: got --extra %q, want %q", tc.args, tc.env, extra, tc.want)
		}
	}
}

// A stop asked for while the service opens (its Open fails with the
// context's error: a migration, a lock wait, a server that does not
// answer) is a stop, not a failure: Run returns nil and logs no error.
// An Open that fails without a stop is still an error.
func TestAStopDuringStartUpIsNoError(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := command
	c.Open = func(ctx context.Context, _ servicehost.Config) (*servicehost.Host, error) {
		cancel() // the signal, while the service opens
		<-ctx.Done()
		return nil, fmt.Errorf("migrate: %w", ctx.Err())
	}
	var logs bytes.Buffer
	if err := c.Run(ctx, nil, lookupIn(map[string]string{"DATA_DIR": t.TempDir()}), &logs); err != nil {
		t.Errorf("Run stopped during start-up: got %v, want nil", err)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), "stopped during start-up") {
		t.Errorf("logs: got %q, want \"stopped during start-up\" and no error", logs.String())
	}

	c.Open = func(context.Context, servicehost.Config) (*servicehost.Host, error) {
		return nil, errors.New("migrate: disk full")
	}
	if err := c.Run(context.Background(), nil, lookupIn(map[string]string{"DATA_DIR": t.TempDir()}), io.Discard); err == nil {
		t.Error("Run whose Open failed without a stop: got nil, want the error")
	}
}

func TestRunOpensTheServiceWithTheConfigAndFaults(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	env := map[string]string{"DATA_DIR": "d", "ALLOWED_HOSTS": "payment,Payment.Internal", "PAYMENT_DECLINE_RATE": "0.5", "PAYMENT_HANDLER_LATENCY": "1s"}
	var got servicehost.Config
	c := command
	c.Open = func(_ context.Context, cfg servicehost.Config) (*servicehost.Host, error) {
		got = cfg
		return nil, errors.New("opened")
	}
	err := c.Run(context.Background(), []string{"--concurrency", "3", "--log-level", "error"}, lookupIn(env), io.Discard)
	if err == nil || err.Error() != "opened" {
		t.Fatalf("Run: got %v, want the error of Open", err)
	}
	if got.DataDir != "d" || got.Concurrency != 3 || got.HTTPAddr != "127.0.0.1:8082" || got.MaxAttempts != 5 {
		t.Errorf("config: got %+v, want data dir d, concurrency 3, the default address and attempts", got)
	}
	if want := []string{"payment", "payment.internal"}; !slices.Equal(got.AllowedHosts, want) {
		t.Errorf("allowed hosts: got %q, want %q", got.AllowedHosts, want)
	}
	if got.Logger == nil || got.TracerProvider == nil || got.MeterProvider == nil || got.Propagator == nil || got.MetricsHandler == nil {
		t.Errorf("telemetry: got %+v, want every part set", got)
	}
	if got.Faults == nil {
		t.Fatal("faults: got nil, want the service's registry")
	}
	if st, err := got.Faults.Get("payment_decline_rate"); err != nil || st.Value != "0.5" {
		t.Errorf("payment_decline_rate: got %+v (%v), want 0.5 from the environment", st, err)
	}
	if d := got.Faults.Duration("handler_latency"); d != time.Second {
		t.Errorf("handler_latency: got %v, want 1s from PAYMENT_HANDLER_LATENCY", d)
	}
	err = c.Run(context.Background(), nil, lookupIn(map[string]string{"PAYMENT_DECLINE_RATE": "2"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "fault flags") {
		t.Errorf("invalid fault flag: got %v, want a fault flags error", err)
	}
}

func TestKeepFreedCMemoryReadsItsVariable(t *testing.T) {
	tests := []struct {
		value   string
		want    string // in the log
		wantErr bool
	}{
		{"0", "C heap left to glibc's defaults", false},
		{"lots", "", true},
		{"-5", "", true},
		{"1048576", "bytes=1048576", false},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			var log strings.Builder
			logger := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
			lookup := func(name string) (string, bool) {
				if name == "C_HEAP_TRIM_THRESHOLD" {
					return tc.value, true
				}
				return "", false
			}
			err := servicecmd.KeepFreedCMemory(t.Context(), logger, lookup)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "C_HEAP_TRIM_THRESHOLD") || !strings.Contains(err.Error(), tc.value) {
					t.Errorf("C_HEAP_TRIM_THRESHOLD=%s: got error %v, want one naming the variable and the value", tc.value, err)
				}
				return
			}
			if err != nil {
				t.Errorf("C_HEAP_TRIM_THRESHOLD=%s: got error %v, want none", tc.value, err)
			}
			if !strings.Contains(log.String(), tc.want) {
				t.Errorf("C_HEAP_TRIM_THRESHOLD=%s: got log %q, want it to contain %q", tc.value, log.String(), tc.want)
			}
		})
	}
}

// GOGC in the environment wins (the runtime applied it at start); without
// it the services collect at DefaultGCPercent.
func TestCollectLessOften(t *testing.T) {
	const before = 150 // neither Go's default nor ours
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"no GOGC", nil, servicecmd.DefaultGCPercent},
		{"GOGC empty", map[string]string{"GOGC": ""}, servicecmd.DefaultGCPercent},
		{"GOGC set", map[string]string{"GOGC": "150"}, before},
		{"GOGC off", map[string]string{"GOGC": "off"}, before},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restore := debug.SetGCPercent(before)
			defer debug.SetGCPercent(restore)
			if err := servicecmd.CollectLessOften(t.Context(), slog.New(slog.DiscardHandler), lookupIn(tc.env)); err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got := debug.SetGCPercent(before); got != tc.want {
				t.Errorf("GC percent: got %d, want %d", got, tc.want)
			}
		})
	}
}

// A GOGC the runtime cannot read (it collects at 100 then, silently) stops
// the service with an error naming the variable, as every other setting.
func TestCollectLessOftenRefusesAnUnreadableGOGC(t *testing.T) {
	for _, v := range []string{"abc", "200%", "+200", " 200", "OFF", "99999999999", "-"} {
		t.Run(v, func(t *testing.T) {
			restore := debug.SetGCPercent(150)
			defer debug.SetGCPercent(restore)
			err := servicecmd.CollectLessOften(t.Context(), slog.New(slog.DiscardHandler), lookupIn(map[string]string{"GOGC": v}))
			if err == nil || !strings.Contains(err.Error(), "GOGC") {
				t.Errorf("GOGC=%q: got error %v, want one naming GOGC", v, err)
			}
		})
	}
}

// StartTelemetry makes the service's telemetry the process's OpenTelemetry
// globals: the SDK's own errors (otel.Handle) become the service's JSON log
// records instead of plain lines on stderr.
func TestStartTelemetryLogsTheSDKsErrors(t *testing.T) {
	prevTracers, prevMeters, prevProp := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTracers)
		otel.SetMeterProvider(prevMeters)
		otel.SetTextMapPropagator(prevProp)
	})
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	// Written only by this goroutine: otel.Handle logs at once, and with
	// OTEL_TRACES_EXPORTER=none nothing exports in the background.
	var logs bytes.Buffer
	tel, shutdown, err := servicecmd.StartTelemetry(t.Context(), "payment", slog.LevelInfo, &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(time.Now().Add(5 * time.Second))
	if otel.GetTracerProvider() != tel.TracerProvider {
		t.Error("global tracer provider: not the service's")
	}
	otel.Handle(errors.New("collect metrics: boom"))
	var record struct {
		Msg     string `json:"msg"`
		Service string `json:"service"`
		Error   string `json:"error"`
	}
	for line := range strings.Lines(logs.String()) {
		if err := json.Unmarshal([]byte(line), &record); err == nil && record.Msg == "opentelemetry error" {
			break
		}
		record.Msg = ""
	}
	if record.Msg == "" || record.Service != "payment" || !strings.Contains(record.Error, "boom") {
		t.Errorf("log after otel.Handle: got %q, want an \"opentelemetry error\" record of service payment naming the error", logs.String())
	}
}
