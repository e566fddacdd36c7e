package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/pkg/logtest"
)

// TestMain fails the package if any goroutine outlives the tests: run
// returns only once the console's server and queue are closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func lookupFrom(env map[string]string) lookupFunc {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestParseConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		c, err := parseConfig(nil, lookupFrom(nil), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		want := config{HTTPAddr: "127.0.0.1:8090", AllowedHosts: []string{"localhost", "127.0.0.1", "::1"}, OrderURL: "http://127.0.0.1:8080", OrderAdminURL: "http://127.0.0.1:8084",
			InventoryURL: "http://127.0.0.1:8081", PaymentURL: "http://127.0.0.1:8082", ShippingURL: "http://127.0.0.1:8083",
			QueueURL: "sqlite://data/queue.db", JaegerUIURL: "http://localhost:16686", Refresh: time.Second,
			UpstreamTimeout: 3 * time.Second, LogLevel: slog.LevelInfo}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("got %+v, want %+v", c, want)
		}
	})
	t.Run("environment, then flags", func(t *testing.T) {
		env := map[string]string{
			"HTTP_ADDR": "127.0.0.1:9999", "ORDER_URL": "http://o", "ORDER_ADMIN_URL": "http://oa", "INVENTORY_URL": "http://i",
			"PAYMENT_URL": "http://p", "SHIPPING_URL": "http://s", "QUEUE_URL": "sqlite:///q.db", "JAEGER_UI_URL": "http://j",
			"CATALOG_FILE": "cat.json", "CONSOLE_REFRESH": "2s", "CONSOLE_UPSTREAM_TIMEOUT": "500ms", "LOG_LEVEL": "debug",
			"ALLOWED_HOSTS": " console.example, 127.0.0.1 ,",
		}
		c, err := parseConfig(nil, lookupFrom(env), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		want := config{HTTPAddr: "127.0.0.1:9999", AllowedHosts: []string{"console.example", "127.0.0.1"}, OrderURL: "http://o", OrderAdminURL: "http://oa", InventoryURL: "http://i",
			PaymentURL: "http://p", ShippingURL: "http://s", QueueURL: "sqlite:///q.db", JaegerUIURL: "http://j", CatalogFile: "cat.json",
			Refresh: 2 * time.Second, UpstreamTimeout: 500 * time.Millisecond, LogLevel: slog.LevelDebug}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("from the environment: got %+v, want %+v", c, want)
		}
		c, err = parseConfig([]string{"--http-addr", "127.0.0.1:1", "--payment-url", "http://p2", "--refresh", "250ms"}, lookupFrom(env), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if c.HTTPAddr != "127.0.0.1:1" || c.PaymentURL != "http://p2" || c.Refresh != 250*time.Millisecond || c.OrderURL != "http://o" {
			t.Errorf("flags over the environment: got %+v", c)
		}
	})
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"bad refresh in the environment":  {nil, map[string]string{"CONSOLE_REFRESH": "often"}, `--refresh (CONSOLE_REFRESH="often"): time: invalid duration "often"`},
		"bad log level":                   {[]string{"--log-level", "loud"}, nil, `--log-level (LOG_LEVEL): slog: level string "loud": unknown name`},
		"bad listen address":              {[]string{"--http-addr", "8090"}, nil, `--http-addr (HTTP_ADDR) "8090": `},
		"no allowed host":                 {[]string{"--allowed-hosts", " , "}, nil, `--allowed-hosts (ALLOWED_HOSTS) " , ": no host name`},
		"stray argument":                  {[]string{"serve"}, nil, "unexpected arguments"},
		"queue URL of no backend":         {[]string{"--queue-url", "bogus://x"}, nil, `--queue-url (QUEUE_URL): queue URL "bogus://x": unsupported scheme "bogus"`},
		"queue URL in the environment":    {nil, map[string]string{"QUEUE_URL": "data/queue.db"}, `--queue-url (QUEUE_URL): queue URL "data/queue.db": want sqlite://PATH`},
		"queue URL flag over a good env":  {[]string{"--queue-url", "sqlite://q.db?lease=soon"}, map[string]string{"QUEUE_URL": "sqlite://q.db"}, `--queue-url (QUEUE_URL): queue URL "sqlite://q.db?lease=soon": lease="soon"`},
		"unknown flag":                    {[]string{"--nope"}, nil, "flag provided but not defined"},
		"upstream timeout too long":       {[]string{"--upstream-timeout", "20s"}, nil, "--upstream-timeout (CONSOLE_UPSTREAM_TIMEOUT): upstream timeout 20s is above 9s"},
		"zero refresh in the environment": {nil, map[string]string{"CONSOLE_REFRESH": "0"}, "--refresh (CONSOLE_REFRESH) must be at least 100ms, got 0s"},
		"refresh too short":               {[]string{"--refresh", "10ms"}, nil, "--refresh (CONSOLE_REFRESH) must be at least 100ms, got 10ms"},
		"order URL without a scheme":      {[]string{"--order-url", "127.0.0.1:19100"}, nil, `--order-url (ORDER_URL): parse "127.0.0.1:19100": first path segment in URL cannot contain colon`},
		"payment URL in the environment":  {nil, map[string]string{"PAYMENT_URL": "ftp://p"}, `--payment-url (PAYMENT_URL): "ftp://p": want an http:// or https:// URL`},
		"Jaeger UI URL without a host":    {[]string{"--jaeger-ui-url", "http://"}, nil, `--jaeger-ui-url (JAEGER_UI_URL): "http://": no host`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseConfig(tc.args, lookupFrom(tc.env), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"--help"}, lookupFrom(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"Usage: console", "-http-addr", "HTTP_ADDR", "-order-url", "-order-admin-url", "-inventory-url",
		"-payment-url", "-shipping-url", "-queue-url", "QUEUE_URL", "-jaeger-ui-url", "JAEGER_UI_URL", "127.0.0.1:8090",
		"-allowed-hosts", "ALLOWED_HOSTS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %q:\n%s", want, out.String())
		}
	}
}

var listeningURL = regexp.MustCompile(`msg="console listening" url=http://(\S+)`)

// startRun runs the console with args until the test ends, and returns its
// log and the loopback address it answers on once /healthz answers.
func startRun(t *testing.T, args ...string) (addr string, log *logtest.Buffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log = &logtest.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, lookupFrom(nil), log) }()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("run did not return 10s after its context ended")
		}
	})
	t.Cleanup(func() { _ = stop() })

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := listeningURL.FindStringSubmatch(log.String()); m != nil && addr == "" {
			_, port, err := net.SplitHostPort(m[1])
			if err != nil {
				t.Fatalf("listening address %q: %v", m[1], err)
			}
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		if addr != "" {
			if resp, err := client.Get("http://" + addr + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return addr, log, stop
				}
			}
		}
		select {
		case err := <-done:
			t.Fatalf("run returned before answering: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer on /healthz after 10s; log:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	_, log, stop := startRun(t, "--http-addr", "127.0.0.1:0", "--queue-url", "postgres://console:s3cret@127.0.0.1:1/queue")
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(log.String(), "console listening") {
		t.Errorf("log: got %q, want the listening address", log)
	}
	if strings.Contains(log.String(), "s3cret") || !strings.Contains(log.String(), "console:xxxxx@127.0.0.1:1") {
		t.Errorf("log: got %q, want the queue URL with its password masked", log)
	}
}

// Listening on every address (as under Docker Compose) must not turn the
// Host check off: DNS rebinding reaches the console through the
// loopback-published port all the same.
func TestRunChecksHostOnEveryAddress(t *testing.T) {
	addr, _, stop := startRun(t, "--http-addr", "0.0.0.0:0", "--queue-url", "sqlite://"+t.TempDir()+"/queue.db")
	for _, tc := range []struct {
		host string
		want int
	}{
		{"", http.StatusOK}, // 127.0.0.1:port
		{"localhost", http.StatusOK},
		{"evil.example", http.StatusMisdirectedRequest},
	} {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.host != "" {
			_, port, _ := net.SplitHostPort(addr)
			req.Host = net.JoinHostPort(tc.host, port)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Host %q: got %d, want %d", req.Host, resp.StatusCode, tc.want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// A queue URL that can never work stops the console at start, before it
// listens, not later on the Queue page.
func TestRunRefusesABadQueueURL(t *testing.T) {
	// A context over already: without the check, run would listen, log
	// it and return at once rather than serve.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var log bytes.Buffer
	err := run(ctx, []string{"--http-addr", "127.0.0.1:0", "--queue-url", "bogus://x"}, lookupFrom(nil), &log)
	if err == nil || !strings.Contains(err.Error(), `--queue-url (QUEUE_URL): queue URL "bogus://x": unsupported scheme "bogus"`) {
		t.Errorf("got %v, want an error naming --queue-url and the scheme", err)
	}
	if strings.Contains(log.String(), "console listening") {
		t.Errorf("log: %q; want it not to listen", log.String())
	}
}

// A catalogue the console cannot use stops it with an error naming
// --catalog and CATALOG_FILE, as every other flag's bad value does.
func TestRunRefusesABadCatalogue(t *testing.T) {
	notJSON := filepath.Join(t.TempDir(), "hostname")
	if err := os.WriteFile(notJSON, []byte("vm-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.json")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // the error's beginning
	}{
		{"missing", []string{"--catalog", missing}, nil, "--catalog (CATALOG_FILE): load catalogue: open " + missing + ": "},
		{"not JSON, from the environment", nil, map[string]string{"CATALOG_FILE": notJSON}, "--catalog (CATALOG_FILE): " + notJSON + ": parse catalogue: invalid character 'v'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, lookupFrom(tc.env), &bytes.Buffer{})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %v, want an error beginning %q", err, tc.want)
			}
		})
	}
}
