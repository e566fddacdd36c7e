package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, &stdout, &stderr, false)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"--rate", "--concurrency", "--duration", "--count", "--json-out", "--max-pending", "p50/p90/p99", "Examples:", "Retry-After", "Exit status: 0", "Interrupted (Ctrl-C or SIGTERM): 0"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "set --duration or --count"},
		{[]string{"--count", "0"}, "set --duration or --count"},
		{[]string{"--count", "1", "extra"}, "unexpected arguments"},
		{[]string{"--count", "1", "--progress", "loud"}, "--progress"},
		{[]string{"--count", "1", "--catalog", "/nonexistent.json"}, "nonexistent"},
		{[]string{"--count", "-3"}, "--count -3: must not be negative"},
		{[]string{"--duration", "-1s"}, "--duration -1s: must not be negative"},
		{[]string{"--count", "1", "--rate", "-5"}, "--rate -5: must not be negative"},
		{[]string{"--count", "1", "--rate", "NaN"}, "--rate NaN: must be a number"},
		{[]string{"--count", "1", "--rate", "+Inf"}, "--rate +Inf: must be a number"},
		{[]string{"--count", "1", "--concurrency", "-1"}, "--concurrency -1: must not be negative"},
		{[]string{"--count", "1", "--max-pending", "-1"}, "--max-pending -1: must not be negative"},
		{[]string{"--count", "1", "--max-lines", "0"}, "--max-lines 0: must be at least 1"},
		{[]string{"--count", "1", "--max-lines", "-2"}, "--max-lines -2: must be at least 1"},
		{[]string{"--count", "1", "--max-quantity", "0"}, "--max-quantity 0: must be at least 1"},
		{[]string{"--count", "1", "--wait", "0s"}, "--wait 0s: must be positive"},
		{[]string{"--count", "1", "--wait", "-1s"}, "--wait -1s: must be positive"},
		{[]string{"--count", "1", "--poll", "0s"}, "--poll 0s: must be positive"},
		{[]string{"--count", "1", "--ready-timeout", "-1s"}, "--ready-timeout -1s: must not be negative"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, &stderr, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(tc.want, "must") && strings.Contains(err.Error(), "set --duration or --count") {
			t.Errorf("run(%q) = %v: a bad value, not a missing one", tc.args, err)
		}
		if stdout.Len() > 0 {
			t.Errorf("run(%q) printed a report:\n%s", tc.args, stdout.String())
		}
	}
	// Every flag at a valid value, for contrast (nothing is placed: the
	// context is over).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	args := []string{"--url", "http://127.0.0.1:1", "--count", "1", "--duration", "1s", "--rate", "0", "--concurrency", "0", "--max-pending", "0",
		"--max-lines", "1", "--max-quantity", "1", "--wait", "1ms", "--poll", "1ms", "-q"}
	if err := run(ctx, args, &bytes.Buffer{}, &bytes.Buffer{}, false); err != nil {
		t.Errorf("run(%q) = %v, want no error", args, err)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is not a terminal")
	}
}

// A minimal order API: every order is COMPLETED when placed.
func fakeOrderAPI() http.Handler { return fakeOrderAPIWith("COMPLETED", nil) }

// fakeOrderAPIWith places every order in status; no order ever changes
// status. placed, when not nil, receives each order's id.
func fakeOrderAPIWith(status string, placed chan<- string) http.Handler {
	var mu sync.Mutex
	n := 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPost && r.URL.Path == "/orders" {
			n++
			id := fmt.Sprintf("o-%d", n)
			now := time.Now().UTC().Truncate(time.Millisecond)
			o := map[string]any{"id": id, "status": status, "placed_at": now, "updated_at": now.Add(3 * time.Millisecond)}
			if status == "COMPLETED" {
				o["finished_at"] = now.Add(3 * time.Millisecond)
			}
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(o)
			if placed != nil {
				placed <- id
			}
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"orders": []any{}})
	})
}

// Orders not placed, or not terminal within --wait, fail the run: after
// the report and the JSON file.
func TestRunFailsWhenOrdersAreNotPlacedOrDoNotEnd(t *testing.T) {
	pending := httptest.NewServer(fakeOrderAPIWith("PENDING", nil))
	defer pending.Close()
	for _, tc := range []struct {
		name  string
		args  []string
		texts []string // in the report
		err   string
		json  string // in the JSON file
	}{
		{"unreachable", []string{"--url", "http://127.0.0.1:1", "--count", "2", "--wait", "2s", "--ready-timeout", "0"},
			[]string{"placed             0", "place errors       2"}, "2 not placed (place errors)", `"place_errors": 2`},
		{"never terminal", []string{"--url", pending.URL, "--count", "2", "--wait", "300ms", "--poll", "50ms"},
			[]string{"placed             2", "timed out waiting  2"}, "2 not terminal within --wait (timed out waiting)", `"timed_out_waiting": 2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.json")
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append(tc.args, "--json-out", out, "-q"), &stdout, &stderr, false)
			if !errors.Is(err, errIncomplete) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("run: %v, want errIncomplete saying %q", err, tc.err)
			}
			for _, want := range tc.texts {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("report lacks %q:\n%s", want, stdout.String())
				}
			}
			if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), tc.json) {
				t.Errorf("JSON report (%v):\n%s\nwant %s", err, b, tc.json)
			}
		})
	}
}

// TestMain lets the test binary be the loadgen command itself
// (LOADGEN_TEST_MAIN=1), to see main's exit status.
func TestMain(m *testing.M) {
	if os.Getenv("LOADGEN_TEST_MAIN") == "1" {
		os.Args = append([]string{"loadgen"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startMain runs main in a child process with args.
func startMain(t *testing.T, args ...string) (cmd *exec.Cmd, stdout, stderr *bytes.Buffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "LOADGEN_TEST_MAIN=1")
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, stdout, stderr
}

func exitStatus(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second): // a hang, not a slow machine
		t.Fatal("loadgen still running after 60s")
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

// The exit status of the command: 1 when an order was not placed, 0 when
// all completed, 0 when interrupted whatever the report says.
func TestMainExitStatus(t *testing.T) {
	t.Run("not ready", func(t *testing.T) {
		cmd, stdout, stderr := startMain(t, "--url", "http://127.0.0.1:1", "--count", "2", "--ready-timeout", "200ms", "-q")
		if status := exitStatus(t, cmd); status != 1 {
			t.Errorf("exit status %d, want 1; stderr:\n%s", status, stderr)
		}
		if stdout.Len() != 0 || !strings.Contains(stderr.String(), "not ready") {
			t.Errorf("stdout:\n%s\nstderr:\n%s\nwant no report, and the reason", stdout, stderr)
		}
	})
	t.Run("not placed", func(t *testing.T) {
		cmd, stdout, stderr := startMain(t, "--url", "http://127.0.0.1:1", "--count", "2", "--wait", "2s", "--ready-timeout", "0", "-q")
		if status := exitStatus(t, cmd); status != 1 {
			t.Errorf("exit status %d, want 1; stderr:\n%s", status, stderr)
		}
		if !strings.Contains(stdout.String(), "place errors       2") || !strings.Contains(stderr.String(), "loadgen: not every order was placed and ended: 2 not placed") {
			t.Errorf("stdout:\n%s\nstderr:\n%s\nwant the report, then the reason", stdout, stderr)
		}
	})
	t.Run("all completed", func(t *testing.T) {
		srv := httptest.NewServer(fakeOrderAPI())
		defer srv.Close()
		cmd, stdout, stderr := startMain(t, "--url", srv.URL, "--count", "3", "-q")
		if status := exitStatus(t, cmd); status != 0 {
			t.Errorf("exit status %d, want 0; stdout:\n%s\nstderr:\n%s", status, stdout, stderr)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		placed := make(chan string, 10)
		srv := httptest.NewServer(fakeOrderAPIWith("PENDING", placed))
		defer srv.Close()
		// One client: when the third order arrives, the first two are
		// placed as far as loadgen knows; none ever ends.
		cmd, stdout, stderr := startMain(t, "--url", srv.URL, "--count", "3", "--concurrency", "1", "--wait", "1h", "-q")
		for range 3 {
			select {
			case <-placed:
			case <-time.After(60 * time.Second):
				t.Fatalf("orders not placed after 60s; stderr:\n%s", stderr)
			}
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if status := exitStatus(t, cmd); status != 0 {
			t.Errorf("exit status %d, want 0; stdout:\n%s\nstderr:\n%s", status, stdout, stderr)
		}
		if !regexp.MustCompile(`timed out waiting  [23] \(interrupted\)`).MatchString(stdout.String()) {
			t.Errorf("report:\n%s\nwant 2 or 3 timed out waiting, interrupted", stdout)
		}
	})
}

func TestRunWritesReportAndJSON(t *testing.T) {
	srv := httptest.NewServer(fakeOrderAPI())
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "report.json")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--url", srv.URL, "--count", "20", "--concurrency", "2", "--json-out", out, "--progress", "plain"}, &stdout, &stderr, false)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"placed             20", "completed          20", "timed out waiting  0", "place → terminal   p50 3.00 ms"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Placed    int `json:"placed"`
		Completed int `json:"completed"`
		Latency   struct {
			P50 float64 `json:"p50_ms"`
		} `json:"latency"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Placed != 20 || rep.Completed != 20 || rep.Latency.P50 != 3 {
		t.Errorf("JSON report %+v, want 20 placed, 20 completed, p50 3ms", rep)
	}
}
