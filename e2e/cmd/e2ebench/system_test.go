package main

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestWithDefaultGOMAXPROCS(t *testing.T) {
	base := []string{"QUEUE_URL=sqlite:///tmp/q.db", "LOG_LEVEL=warn"}
	tests := []struct {
		name    string
		environ map[string]string // this command's environment
		want    []string
	}{
		{
			name: "unset: one P per service, as go tool task run starts them",
			want: []string{"QUEUE_URL=sqlite:///tmp/q.db", "LOG_LEVEL=warn", "GOMAXPROCS=1"},
		},
		{
			name:    "set here: the services inherit it through os.Environ",
			environ: map[string]string{"GOMAXPROCS": "2"},
			want:    base,
		},
		{
			name:    "set empty here: still the user's choice (Go's default)",
			environ: map[string]string{"GOMAXPROCS": ""},
			want:    base,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.environ[k]; return v, ok }
			got := withDefaultGOMAXPROCS(slices.Clone(base), lookup)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestServiceGOMAXPROCS(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"none: Go's default", []string{"PATH=/bin"}, "Go's default (the CPU count)"},
		{"empty: Go's default", []string{"GOMAXPROCS="}, "Go's default (the CPU count)"},
		{"the last one", []string{"GOMAXPROCS=3", "GOMAXPROCS=1", "CONCURRENCY=16", "GOMAXPROCS=4"}, "4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := serviceGOMAXPROCS(tt.env); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// As run computes it: withDefaultGOMAXPROCS's 1 unless this command's
	// environment has one, --env last.
	unset := func(string) (string, bool) { return "", false }
	if got := serviceGOMAXPROCS(withDefaultGOMAXPROCS([]string{"PATH=/bin"}, unset)); got != "1" {
		t.Errorf("default: got %q, want 1", got)
	}
	if got := serviceGOMAXPROCS(append(withDefaultGOMAXPROCS(nil, unset), "GOMAXPROCS=2")); got != "2" {
		t.Errorf("with --env GOMAXPROCS=2: got %q, want 2", got)
	}
}

// The report says what the service processes ran with, so that reports
// made before and after a change of those settings are not compared as if
// they were alike.
func TestReportNamesTheServicesSettings(t *testing.T) {
	r := &results{ServiceGOMAXPROCS: "1", Options: options{Env: []string{"CONCURRENCY=16"}}}
	if got, want := r.markdown(), "Service processes: GOMAXPROCS 1; --env CONCURRENCY=16.\n"; !strings.Contains(got, want) {
		t.Errorf("report:\n%s\nwant a line %q", got, want)
	}
}

// freePort picks ports outside the kernel's ephemeral range, which
// another process's ":0" can never be handed, that are free and that it
// did not pick before for the same system.
func TestFreePortIsOutsideTheEphemeralRange(t *testing.T) {
	lo, hi := pickRange()
	if lo == 0 {
		// No room outside the range here: freePort falls back to ports
		// the kernel picks, still each once and bindable.
		t.Log("no room outside the ephemeral range on this machine: checking the fallback")
		lo, hi = 1, 65535
	}
	taken := map[int]bool{}
	for range 50 {
		port, err := freePort(taken)
		if err != nil {
			t.Fatal(err)
		}
		if port < lo || port > hi {
			t.Fatalf("freePort: got %d, want a port in %d..%d", port, lo, hi)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatalf("freePort: got %d, which cannot be bound: %v", port, err)
		}
		_ = l.Close()
	}
	if len(taken) != 50 {
		t.Errorf("ports picked: %d distinct of 50, want each once", len(taken))
	}
}
