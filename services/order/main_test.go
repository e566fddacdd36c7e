package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/pkg/servicecmd"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/services/order/service"
)

// TestMain fails the package if any goroutine outlives the tests: the
// commands close the service and database they open.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) servicecmd.LookupFunc {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	dir := t.TempDir()
	goodCatalog, notJSON, missing := filepath.Join(dir, "catalog.json"), filepath.Join(dir, "hostname"), filepath.Join(dir, "missing.json")
	if err := os.WriteFile(goodCatalog, []byte(`[{"sku":"SKU-9","name":"Cup","unit_price_cents":100,"initial_stock":1}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notJSON, []byte("vm-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c config)
		wantErr string
	}{
		{"defaults", nil, nil, func(t *testing.T, c config) {
			s := c.Service
			if s.QueueURL != "sqlite://data/queue.db" || s.DataDir != "data" || s.HTTPAddr != "127.0.0.1:8080" ||
				s.AdminAddr != "127.0.0.1:8084" || s.StepTimeout != 30*time.Second || s.MaxOpenOrders != 2000 || s.Concurrency != 16 || c.Command != "" {
				t.Errorf("got %+v, want the documented defaults", s)
			}
		}, ""},
		{"environment", nil, map[string]string{
			"QUEUE_URL": "postgres://u@h/db", "DATA_DIR": "/tmp/x", "HTTP_ADDR": ":9", "ADMIN_ADDR": "off", "STEP_TIMEOUT": "2s",
		}, func(t *testing.T, c config) {
			s := c.Service
			if s.QueueURL != "postgres://u@h/db" || s.DataDir != "/tmp/x" || s.HTTPAddr != ":9" || s.AdminAddr != "off" || s.StepTimeout != 2*time.Second {
				t.Errorf("got %+v, want the environment's values", s)
			}
		}, ""},
		{"allowed hosts", []string{"--allowed-hosts", "Order, order.internal"}, map[string]string{"ALLOWED_HOSTS": "other"}, func(t *testing.T, c config) {
			if want := []string{"order", "order.internal"}; !slices.Equal(c.Service.AllowedHosts, want) {
				t.Errorf("got AllowedHosts %q, want %q", c.Service.AllowedHosts, want)
			}
		}, ""},
		{"an allowed host with a scheme", nil, map[string]string{"ALLOWED_HOSTS": "http://order"}, nil, `--allowed-hosts (ALLOWED_HOSTS): host "http://order"`},
		{"flags beat the environment", []string{"--step-timeout", "5s", "--data-dir", "d"}, map[string]string{"STEP_TIMEOUT": "2s"},
			func(t *testing.T, c config) {
				if c.Service.StepTimeout != 5*time.Second || c.Service.DataDir != "d" {
					t.Errorf("got %+v, want the flags' values", c.Service)
				}
			}, ""},
		{"rebuild-projections", []string{"rebuild-projections", "--data-dir", "d"}, nil, func(t *testing.T, c config) {
			if c.Command != "rebuild-projections" || c.Service.DataDir != "d" {
				t.Errorf("got %q %q, want rebuild-projections in d", c.Command, c.Service.DataDir)
			}
		}, ""},
		{"no open-order limit", []string{"--max-open-orders", "0"}, nil, func(t *testing.T, c config) {
			if !c.Service.NoOpenOrderLimit || c.Service.MaxOpenOrders != 0 {
				t.Errorf("got MaxOpenOrders %d, NoOpenOrderLimit %v, want 0 and true (service.Config's no limit)", c.Service.MaxOpenOrders, c.Service.NoOpenOrderLimit)
			}
		}, ""},
		{"open-order limit from the environment", nil, map[string]string{"MAX_OPEN_ORDERS": "50"}, func(t *testing.T, c config) {
			if c.Service.MaxOpenOrders != 50 || c.Service.NoOpenOrderLimit {
				t.Errorf("got MaxOpenOrders %d, NoOpenOrderLimit %v, want 50 and false", c.Service.MaxOpenOrders, c.Service.NoOpenOrderLimit)
			}
		}, ""},
		{"max abandoned by default", nil, nil, func(t *testing.T, c config) {
			if c.Service.MaxAbandoned != 2 {
				t.Errorf("got MaxAbandoned %d, want the default 2", c.Service.MaxAbandoned)
			}
		}, ""},
		{"max abandoned from the environment", nil, map[string]string{"MAX_ABANDONED": "4"}, func(t *testing.T, c config) {
			if c.Service.MaxAbandoned != 4 {
				t.Errorf("got MaxAbandoned %d, want 4", c.Service.MaxAbandoned)
			}
		}, ""},
		{"zero max abandoned", []string{"--max-abandoned", "0"}, nil, nil, "--max-abandoned (MAX_ABANDONED) must be at least 1, got 0"},
		{"dedup retention by default", nil, nil, func(t *testing.T, c config) {
			if got, want := c.Service.DedupRetention, servicehost.DefaultDedupRetention; got != want {
				t.Errorf("got DedupRetention %s, want the default %s", got, want)
			}
		}, ""},
		{"dedup retention from the environment", nil, map[string]string{"DEDUP_RETENTION": "36h"}, func(t *testing.T, c config) {
			if got, want := c.Service.DedupRetention, 36*time.Hour; got != want {
				t.Errorf("got DedupRetention %s, want %s", got, want)
			}
		}, ""},
		{"dedup retention under an hour", []string{"--dedup-retention", "30m"}, nil, nil, "--dedup-retention (DEDUP_RETENTION) must be at least 1h0m0s, got 30m0s"},
		{"an address without a port", []string{"--http-addr", "nope"}, nil, nil, `--http-addr (HTTP_ADDR) "nope" is not HOST:PORT`},
		{"an admin address without a port", nil, map[string]string{"ADMIN_ADDR": "localhost"}, nil, `--admin-addr (ADMIN_ADDR) "localhost" is not HOST:PORT`},
		{"negative open-order limit", []string{"--max-open-orders", "-3"}, nil, nil, "max-open-orders"},
		{"unknown command", []string{"explode"}, nil, nil, "unknown command"},
		// A value that does not parse, or a queue URL that is none:
		// refused, naming the flag and its variable.
		{"bad duration in the environment", nil, map[string]string{"STEP_TIMEOUT": "soon"}, nil, `--step-timeout (STEP_TIMEOUT="soon"): time: invalid duration "soon"`},
		{"bad number in the environment", nil, map[string]string{"CONCURRENCY": "x"}, nil, `--concurrency (CONCURRENCY="x"): strconv.Atoi: parsing "x": invalid syntax`},
		{"bad log level", []string{"--log-level", "loud"}, nil, nil, `--log-level (LOG_LEVEL): slog: level string "loud": unknown name`},
		{"bad log level in the environment", nil, map[string]string{"LOG_LEVEL": "verbose"}, nil, `--log-level (LOG_LEVEL): slog: level string "verbose": unknown name`},
		{"queue URL of no backend", nil, map[string]string{"QUEUE_URL": "bogus://x"}, nil, `--queue-url (QUEUE_URL): queue URL "bogus://x": unsupported scheme "bogus"`},
		{"catalogue that is not JSON", []string{"--catalog", notJSON}, nil, nil, "--catalog (CATALOG_FILE): " + notJSON + ": parse catalogue: invalid character 'v'"},
		{"missing catalogue in the environment", nil, map[string]string{"CATALOG_FILE": missing}, nil, "--catalog (CATALOG_FILE): load catalogue: open " + missing + ": "},
		{"catalogue", nil, map[string]string{"CATALOG_FILE": goodCatalog}, func(t *testing.T, c config) {
			if c.Service.CatalogFile != goodCatalog {
				t.Errorf("got CatalogFile %q, want %q", c.Service.CatalogFile, goodCatalog)
			}
		}, ""},
		{"stray argument", []string{"--data-dir", "d", "extra"}, nil, nil, "unexpected arguments"},
		// Given empty, a flag would quietly be its default.
		{"empty data dir", []string{"--data-dir="}, nil, nil, "--data-dir (DATA_DIR) is empty"},
		{"empty data dir for rebuild-projections", []string{"rebuild-projections", "--data-dir", ""}, nil, nil, "--data-dir (DATA_DIR) is empty"},
		{"neither host nor port", []string{"--http-addr=:"}, nil, nil, `--http-addr (HTTP_ADDR) ":" has no port`},
		{"an admin address with a host and no port", nil, map[string]string{"ADMIN_ADDR": "127.0.0.1:"}, nil, `--admin-addr (ADMIN_ADDR) "127.0.0.1:" has no port`},
		// 0 or a negative value where it means nothing: refused, naming
		// the flag and its variable, instead of quietly taking a default.
		{"zero step timeout", []string{"--step-timeout", "0"}, nil, nil, "--step-timeout (STEP_TIMEOUT) must be positive, got 0s"},
		{"zero step timeout from the environment", nil, map[string]string{"STEP_TIMEOUT": "0s"}, nil, "--step-timeout (STEP_TIMEOUT) must be positive, got 0s"},
		{"negative step timeout", []string{"--step-timeout", "-1s"}, nil, nil, "--step-timeout (STEP_TIMEOUT) must be positive, got -1s"},
		{"zero shutdown timeout", []string{"--shutdown-timeout", "0"}, nil, nil, "--shutdown-timeout (SHUTDOWN_TIMEOUT) must be positive, got 0s"},
		{"zero concurrency", nil, map[string]string{"CONCURRENCY": "0"}, nil, "--concurrency (CONCURRENCY) must be at least 1, got 0"},
		{"negative max attempts", []string{"--max-attempts", "-2"}, nil, nil, "--max-attempts (MAX_ATTEMPTS) must be at least 1, got -2"},
		{"negative compensation timeout", []string{"--compensation-timeout", "-5s"}, nil, nil, "--compensation-timeout (COMPENSATION_TIMEOUT) must not be negative, got -5s"},
		{"negative scan interval", nil, map[string]string{"TIMEOUT_SCAN_INTERVAL": "-1ms"}, nil, "--timeout-scan-interval (TIMEOUT_SCAN_INTERVAL) must not be negative, got -1ms"},
		{"zero compensation timeout and scan interval keep their documented meaning", []string{"--compensation-timeout", "0", "--timeout-scan-interval", "0"}, nil,
			func(t *testing.T, c config) {
				if c.Service.CompensationTimeout != 0 || c.Service.TimeoutScanInterval != 0 {
					t.Errorf("got %v and %v, want 0 and 0 (the service's defaults)", c.Service.CompensationTimeout, c.Service.TimeoutScanInterval)
				}
			}, ""},
		{"db synchronous OFF", nil, map[string]string{"DB_SYNCHRONOUS": "OFF"}, nil, `--db-synchronous (DB_SYNCHRONOUS) must be NORMAL or FULL, got "OFF"`},
		{"db synchronous flag", []string{"--db-synchronous", "extra"}, nil, nil, `--db-synchronous (DB_SYNCHRONOUS) must be NORMAL or FULL, got "extra"`},
		{"db synchronous full", []string{"--db-synchronous", "full"}, nil, func(t *testing.T, c config) {
			if c.Service.Synchronous != "full" {
				t.Errorf("got %q, want full", c.Service.Synchronous)
			}
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			c, err := parseConfig(tc.args, env(tc.env), &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			tc.check(t, c)
		})
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"--help"}, func(string) (string, bool) { return "", false }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"rebuild-projections", "QUEUE_URL", "DATA_DIR", "HTTP_ADDR", "ADMIN_ADDR", "ALLOWED_HOSTS", "STEP_TIMEOUT", "CRASH_AFTER_COMMIT", "OTEL_"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
	// The fault flags as the worker services list them (tested in
	// servicecmd): admin API names and the variables LoadFaults reads.
	var faultFlags strings.Builder
	servicecmd.FaultFlagsUsage(&faultFlags, service.Name)
	if !strings.Contains(out.String(), faultFlags.String()) {
		t.Errorf("--help: got\n%s\nwant it to list the fault flags as\n%s", out.String(), faultFlags.String())
	}
}

// rebuild-projections on a data directory without order.db fails, naming
// the file, and does not create it; on a real one it rebuilds.
func TestRebuildProjectionsCommand(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	none := func(string) (string, bool) { return "", false }
	ctx := context.Background()

	wrong := filepath.Join(t.TempDir(), "wrong")
	var stderr bytes.Buffer
	err := run(ctx, []string{"rebuild-projections", "--data-dir", wrong}, none, &stderr)
	dbPath := filepath.Join(wrong, service.DBFile)
	if err == nil || !strings.Contains(err.Error(), dbPath) {
		t.Errorf("rebuild-projections --data-dir %s: got %v, want an error naming %s", wrong, err, dbPath)
	}
	if strings.Contains(stderr.String(), "projections rebuilt") {
		t.Errorf("log: got %q, want no \"projections rebuilt\"", stderr.String())
	}
	if _, statErr := os.Stat(wrong); !errors.Is(statErr, fs.ErrNotExist) {
		t.Errorf("%s after the failed rebuild: got %v, want it still missing", wrong, statErr)
	}
	empty := t.TempDir()
	if err := run(ctx, []string{"rebuild-projections", "--data-dir", empty}, none, io.Discard); err == nil {
		t.Errorf("rebuild-projections in an empty directory: got nil error, want one")
	}
	if _, statErr := os.Stat(filepath.Join(empty, service.DBFile)); !errors.Is(statErr, fs.ErrNotExist) {
		t.Errorf("%s after the failed rebuild: got %v, want it not created", service.DBFile, statErr)
	}

	// A real database: the service creates it, the command rebuilds it.
	dir := t.TempDir()
	svc, err := service.New(ctx, service.Config{QueueURL: "memory://", DataDir: dir, HTTPAddr: "127.0.0.1:0", AdminAddr: "off"})
	if err != nil {
		t.Fatal(err)
	}
	svc.Close()
	stderr.Reset()
	if err := run(ctx, []string{"rebuild-projections", "--data-dir", dir}, none, &stderr); err != nil {
		t.Fatalf("rebuild-projections on a real database: got %v, want nil", err)
	}
	if !strings.Contains(stderr.String(), "projections rebuilt") {
		t.Errorf("log: got %q, want \"projections rebuilt\"", stderr.String())
	}
}
