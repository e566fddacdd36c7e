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
// are shipping's defaults and help.
func TestCommandLine(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	got, err := command.Parse(nil, none, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := servicecmd.Config{QueueURL: "sqlite://data/queue.db", DataDir: "data", HTTPAddr: "127.0.0.1:8083",
		Concurrency: 4, MaxAttempts: 5, MaxAbandoned: 2, ShutdownTimeout: servicehost.DefaultShutdownTimeout, DedupRetention: servicehost.DefaultDedupRetention, LogLevel: slog.LevelInfo}
	if got != want {
		t.Errorf("defaults: got %+v, want %+v", got, want)
	}
	var out strings.Builder
	if _, err := command.Parse([]string{"--help"}, none, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"shipping.commands", "shipping.events", "shipping.db", "SHIPPING_FAILURE_RATE", "SHIPPING_LATENCY"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help output lacks %q", want)
		}
	}
}
