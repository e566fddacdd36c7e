package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/pkg/servicecmd"
	"github.com/orderflow/orderflow/pkg/servicehost"
)

// The flags every worker service shares are tested in pkg/servicecmd; these
// are inventory's defaults, its --catalog flag and its help.
func TestParseConfig(t *testing.T) {
	defaults := servicecmd.Config{QueueURL: "sqlite://data/queue.db", DataDir: "data", HTTPAddr: "127.0.0.1:8081",
		Concurrency: 4, MaxAttempts: 5, MaxAbandoned: 2, ShutdownTimeout: servicehost.DefaultShutdownTimeout, DedupRetention: servicehost.DefaultDedupRetention, LogLevel: slog.LevelInfo}
	c, e, f := writeCatalog(t, "c.json"), writeCatalog(t, "e.json"), writeCatalog(t, "f.json")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{"defaults", nil, nil, config{Config: defaults}},
		{"catalog flag", []string{"--catalog", c}, nil, config{Config: defaults, CatalogFile: c}},
		{"catalog env", nil, map[string]string{"CATALOG_FILE": e}, config{Config: defaults, CatalogFile: e}},
		{"flag wins", []string{"--catalog", f}, map[string]string{"CATALOG_FILE": e}, config{Config: defaults, CatalogFile: f}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			got, err := parseConfig(tc.args, lookup, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	var out strings.Builder
	none := func(string) (string, bool) { return "", false }
	if _, err := parseConfig([]string{"--help"}, none, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-catalog", "CATALOG_FILE", "inventory.commands", "inventory.events", "inventory.db", "INVENTORY_OUT_OF_STOCK_SKUS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help output lacks %q", want)
		}
	}
}

// writeCatalog writes a valid catalogue to name in a fresh directory and
// returns its path.
func writeCatalog(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(`[{"sku":"SKU-9","name":"Cup","unit_price_cents":100,"initial_stock":1}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A catalogue inventory would not start on is refused naming --catalog
// and CATALOG_FILE, as every other flag's bad value is.
func TestParseConfigRefusesABadCatalogue(t *testing.T) {
	notJSON := filepath.Join(t.TempDir(), "hostname")
	if err := os.WriteFile(notJSON, []byte("vm-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.json")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the error's beginning
	}{
		{"not JSON", []string{"--catalog", notJSON}, nil, "--catalog (CATALOG_FILE): " + notJSON + ": parse catalogue: invalid character 'v'"},
		{"missing, from the environment", nil, map[string]string{"CATALOG_FILE": missing}, "--catalog (CATALOG_FILE): load catalogue: open " + missing + ": "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			_, err := parseConfig(tc.args, lookup, io.Discard)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %v, want an error beginning %q", err, tc.want)
			}
		})
	}
}
