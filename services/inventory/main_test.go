package main

import (
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/pkg/servicecmd"
	"github.com/orderflow/orderflow/pkg/servicehost"
)

// The flags every worker service shares are tested in pkg/servicecmd; these
// are inventory's defaults, its --catalog flag and its help.
func TestParseConfig(t *testing.T) {
	defaults := servicecmd.Config{QueueURL: "sqlite://data/queue.db", DataDir: "data", HTTPAddr: "127.0.0.1:8081",
		Concurrency: 4, MaxAttempts: 5, ShutdownTimeout: servicehost.DefaultShutdownTimeout, LogLevel: slog.LevelInfo}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{"defaults", nil, nil, config{Config: defaults}},
		{"catalog flag", []string{"--catalog", "c.json"}, nil, config{Config: defaults, CatalogFile: "c.json"}},
		{"catalog env", nil, map[string]string{"CATALOG_FILE": "e.json"}, config{Config: defaults, CatalogFile: "e.json"}},
		{"flag wins", []string{"--catalog", "f.json"}, map[string]string{"CATALOG_FILE": "e.json"}, config{Config: defaults, CatalogFile: "f.json"}},
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
