package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	env := map[string]string{"QUEUE_URL": "sqlite:///tmp/q.db", "DATA_DIR": "/tmp/d", "CONCURRENCY": "2", "LOG_LEVEL": "debug"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		name string
		args []string
		want config
	}{
		{"defaults", nil, config{QueueURL: "sqlite://data/queue.db", DataDir: "data", HTTPAddr: "127.0.0.1:8083", Concurrency: 4, MaxAttempts: 5, LogLevel: slog.LevelInfo}},
		{"flags", []string{"--queue-url", "postgres://u@h/db", "--data-dir", "x", "--http-addr", "127.0.0.1:0", "--concurrency", "8", "--max-attempts", "2", "--log-level", "warn"},
			config{QueueURL: "postgres://u@h/db", DataDir: "x", HTTPAddr: "127.0.0.1:0", Concurrency: 8, MaxAttempts: 2, LogLevel: slog.LevelWarn}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(tc.args, func(string) (string, bool) { return "", false }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	got, err := parseConfig([]string{"--data-dir", "flag-wins"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{QueueURL: "sqlite:///tmp/q.db", DataDir: "flag-wins", HTTPAddr: "127.0.0.1:8083", Concurrency: 2, MaxAttempts: 5, LogLevel: slog.LevelDebug}
	if got != want {
		t.Errorf("env fallback: got %+v, want %+v", got, want)
	}
	if got, want := got.dbPath(), "flag-wins/"+serviceName+".db"; got != want {
		t.Errorf("dbPath: got %q, want %q", got, want)
	}
}

func TestParseConfigErrorsAndHelp(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	for _, args := range [][]string{{"--concurrency", "0"}, {"--log-level", "loud"}, {"extra"}, {"--nope"}} {
		if _, err := parseConfig(args, none, io.Discard); err == nil {
			t.Errorf("parseConfig(%q): got nil error, want one", args)
		}
	}
	var out strings.Builder
	_, err := parseConfig([]string{"--help"}, none, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"--queue-url", "QUEUE_URL", "HANDLER_LATENCY", "CRASH_AFTER_COMMIT"} {
		if !strings.Contains(strings.ReplaceAll(out.String(), "  -", "  --"), want) {
			t.Errorf("--help output lacks %q", want)
		}
	}
}
