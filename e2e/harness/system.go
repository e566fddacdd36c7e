package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Product is a catalogue entry (pkg/catalog's JSON form). The order
// service prices orders from the catalogue and inventory seeds its stock
// from it.
type Product struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	UnitPriceCents int64  `json:"unit_price_cents"`
	InitialStock   int    `json:"initial_stock"`
}

// DefaultCatalog mirrors pkg/catalog.Default: what the services use when
// Config.Catalog is nil.
func DefaultCatalog() []Product {
	return []Product{
		{SKU: "SKU-1", Name: "Espresso beans, 1 kg", UnitPriceCents: 1500, InitialStock: 1000},
		{SKU: "SKU-2", Name: "Burr grinder", UnitPriceCents: 8999, InitialStock: 200},
		{SKU: "SKU-3", Name: "Milk jug, 350 ml", UnitPriceCents: 1299, InitialStock: 500},
		{SKU: "SKU-4", Name: "Tamper, 58 mm", UnitPriceCents: 2499, InitialStock: 300},
		{SKU: "SKU-5", Name: "Limited-edition cup", UnitPriceCents: 1999, InitialStock: 10},
	}
}

// Config describes a System. Zero values take the defaults.
type Config struct {
	// QueueURL is the shared queue; "" is a SQLite file in the system's
	// directory, with SQLiteParams. Use PostgresQueueURL for a fresh
	// PostgreSQL schema.
	QueueURL string
	// SQLiteParams tune the default SQLite queue (see queue.Config.URL).
	// Default "lease=3s": a killed consumer's messages come back after 3s
	// rather than the production default of 30s, so that kill scenarios fit
	// in a CI run; live consumers extend their leases every second.
	SQLiteParams string
	// StepTimeout is the order service's --step-timeout. Default 30s:
	// long enough that no step times out on a busy 2-core machine unless
	// the test wants it to.
	StepTimeout time.Duration
	// Traces starts an OTLP receiver and points every service at it;
	// otherwise the services export nothing (OTEL_TRACES_EXPORTER=none).
	Traces bool
	// Catalog, when set, is written to a file and given to the order and
	// inventory services (--catalog).
	Catalog []Product
	// Env is added to every service's environment (fault flags such as
	// PAYMENT_DECLINE_RATE, MAX_ATTEMPTS, …); ServiceEnv to one service's.
	Env        map[string]string
	ServiceEnv map[string]map[string]string
	// LogLevel of the services: info (the default) or debug. The harness
	// reads each process's addresses from its info records.
	LogLevel string
}

// System is the four services running as OS processes on one queue.
type System struct {
	t        TB
	cfg      Config
	bins     Binaries
	dir      string
	queueURL string
	receiver *Receiver
	procs    map[string]*Process
	catalog  []Product
	client   *Client

	mu      sync.Mutex
	stopped bool
}

// Start builds nothing (pass MustBuild's binaries), starts the four
// services concurrently and returns once all are ready. Everything is
// stopped (SIGKILL) when the test ends; if it failed, the tail of every
// process's log is printed.
func Start(t TB, bins Binaries, cfg Config) *System {
	t.Helper()
	s, err := New(t, bins, cfg)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.StartAll(ctx); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return s
}

// New prepares a System without starting it: directories, the OTLP
// receiver, the processes' command lines. The cleanup is registered on t.
func New(t TB, bins Binaries, cfg Config) (*System, error) {
	if cfg.StepTimeout == 0 {
		cfg.StepTimeout = 30 * time.Second
	}
	switch cfg.LogLevel {
	case "":
		cfg.LogLevel = "info"
	case "info", "debug":
	default:
		return nil, fmt.Errorf("log level %q: want info or debug (the addresses are read from info records)", cfg.LogLevel)
	}
	s := &System{t: t, cfg: cfg, bins: bins, dir: t.TempDir(), procs: map[string]*Process{}}
	s.catalog = cfg.Catalog
	if s.catalog == nil {
		s.catalog = DefaultCatalog()
	}
	s.queueURL = cfg.QueueURL
	if s.queueURL == "" {
		params := cfg.SQLiteParams
		if params == "" {
			params = "lease=3s"
		}
		s.queueURL = "sqlite://" + filepath.Join(s.dir, "queue.db") + "?" + params
	}
	t.Cleanup(s.cleanup)

	catalogFile := ""
	if cfg.Catalog != nil {
		data, err := json.Marshal(cfg.Catalog)
		if err != nil {
			return nil, err
		}
		catalogFile = filepath.Join(s.dir, "catalog.json")
		if err := os.WriteFile(catalogFile, data, 0o644); err != nil {
			return nil, err
		}
	}
	base := []string{"LOG_LEVEL=" + cfg.LogLevel}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			base = append(base, k+"="+v)
		}
	}
	if cfg.Traces {
		r, err := NewReceiver()
		if err != nil {
			return nil, err
		}
		s.receiver = r
		base = append(base,
			"OTEL_EXPORTER_OTLP_ENDPOINT="+r.Endpoint(),
			"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_BSP_SCHEDULE_DELAY=100",
		)
	} else {
		base = append(base, "OTEL_TRACES_EXPORTER=none")
	}
	for _, k := range sortedKeys(cfg.Env) {
		base = append(base, k+"="+cfg.Env[k])
	}
	for _, name := range Services {
		dataDir := filepath.Join(s.dir, name)
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, err
		}
		args := []string{"--queue-url", s.queueURL, "--data-dir", dataDir, "--http-addr", "127.0.0.1:0"}
		switch name {
		case OrderService:
			args = append(args, "--admin-addr", "127.0.0.1:0", "--step-timeout", cfg.StepTimeout.String())
			if catalogFile != "" {
				args = append(args, "--catalog", catalogFile)
			}
		case InventoryService:
			if catalogFile != "" {
				args = append(args, "--catalog", catalogFile)
			}
		}
		env := append([]string(nil), base...)
		for _, k := range sortedKeys(cfg.ServiceEnv[name]) {
			env = append(env, k+"="+cfg.ServiceEnv[name][k])
		}
		s.procs[name] = newProcess(name, bins.Path(name), args, env, filepath.Join(s.dir, name+".log"))
	}
	s.client = &Client{sys: s}
	return s, nil
}

// StartAll starts every service that is not running, concurrently.
func (s *System) StartAll(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(Services))
	for i, name := range Services {
		p := s.procs[name]
		if p.Running() {
			continue
		}
		wg.Go(func() { errs[i] = p.Start(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// KillAll SIGKILLs every service, concurrently.
func (s *System) KillAll() {
	var wg sync.WaitGroup
	for _, p := range s.procs {
		wg.Go(func() { _ = p.Kill() })
	}
	wg.Wait()
}

// Service returns one service's process; it panics for an unknown name.
func (s *System) Service(name string) *Process {
	p, ok := s.procs[name]
	if !ok {
		panic("harness: unknown service " + name)
	}
	return p
}

// Receiver is the OTLP receiver; nil unless Config.Traces.
func (s *System) Receiver() *Receiver { return s.receiver }

// QueueURL is the queue URL the services run on.
func (s *System) QueueURL() string { return s.queueURL }

// Catalog is the catalogue the services run with.
func (s *System) Catalog() []Product { return append([]Product(nil), s.catalog...) }

// Client is the system's HTTP client (order API and admin APIs).
func (s *System) Client() *Client { return s.client }

// CheckNoCrashes reports, as test errors, every process run that ended
// without the harness asking (see Process.WaitExit for expected exits).
func (s *System) CheckNoCrashes() {
	s.t.Helper()
	for _, name := range Services {
		for _, u := range s.procs[name].UnexpectedExits() {
			s.t.Errorf("%s exited on its own (%s); see its log below", name, u)
		}
	}
}

func (s *System) cleanup() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.mu.Unlock()

	s.CheckNoCrashes()
	s.KillAll()
	if s.receiver != nil {
		if f := s.receiver.Failures(); len(f) > 0 {
			s.t.Errorf("OTLP receiver refused %d export requests, first: %s", len(f), f[0])
		}
		_ = s.receiver.Close()
	}
	if !s.t.Failed() {
		return
	}
	kept := s.keepLogs()
	for _, name := range Services {
		p := s.procs[name]
		lines := p.Tail()
		s.t.Logf("---- %s: last %d log lines (started %d times; full log %s) ----\n%s",
			name, len(lines), p.Starts(), kept[name], strings.Join(lines, "\n"))
	}
}

// LogDirEnv names a directory where the logs of a failed test are kept
// (the system's own directory is removed with the test).
const LogDirEnv = "E2E_LOG_DIR"

// keepLogs copies the logs to $E2E_LOG_DIR/<test name>/ if set, and returns
// where each log is (or "removed with the test").
func (s *System) keepLogs() map[string]string {
	out := map[string]string{}
	base := os.Getenv(LogDirEnv)
	for _, name := range Services {
		out[name] = "removed with the test; set " + LogDirEnv + " to keep it"
		if base == "" {
			continue
		}
		dir := filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(s.t.Name()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			continue
		}
		data, err := os.ReadFile(s.procs[name].LogPath())
		if err != nil {
			continue
		}
		dst := filepath.Join(dir, name+".log")
		if os.WriteFile(dst, data, 0o644) == nil {
			out[name] = dst
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
