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
	"path/filepath"
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
	for _, want := range []string{"--rate", "--concurrency", "--duration", "--count", "--json-out", "--max-pending", "p50/p90/p99", "Examples:", "Retry-After"} {
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
		{[]string{"--count", "1", "extra"}, "unexpected arguments"},
		{[]string{"--count", "1", "--progress", "loud"}, "--progress"},
		{[]string{"--count", "1", "--catalog", "/nonexistent.json"}, "nonexistent"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, &stderr, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
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
func fakeOrderAPI() http.Handler {
	var mu sync.Mutex
	n := 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPost && r.URL.Path == "/orders" {
			n++
			now := time.Now().UTC().Truncate(time.Millisecond)
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"id":     fmt.Sprintf("o-%d", n),
				"status": "COMPLETED", "placed_at": now, "updated_at": now.Add(3 * time.Millisecond), "finished_at": now.Add(3 * time.Millisecond),
			})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"orders": []any{}})
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
