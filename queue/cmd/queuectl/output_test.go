package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/queue"
)

// An empty queue has no topics: --json topics prints [], not null, on
// either backend.
func TestJSONTopicsOfAnEmptyQueueIsAnEmptyList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, err := queue.Open(context.Background(), queue.Config{URL: "sqlite://" + path})
	if err != nil {
		t.Fatal(err)
	}
	_ = q.Close()
	urls := map[string]string{"sqlite": "sqlite://" + path}
	t.Run("postgres", func(t *testing.T) {
		url, _ := openPostgres(t)
		out, errOut, err := runCLI(t, "--queue-url", url, "--json", "topics")
		if err != nil || strings.TrimSpace(out) != "[]" {
			t.Errorf("--json topics: got %q, stderr %q, error %v; want []", out, errOut, err)
		}
	})
	for name, url := range urls {
		out, errOut, err := runCLI(t, "--queue-url", url, "--json", "topics")
		if err != nil || strings.TrimSpace(out) != "[]" {
			t.Errorf("%s: --json topics: got %q, stderr %q, error %v; want []", name, out, errOut, err)
		}
	}
}

// memory:// is a queue inside one process: queuectl would open an empty
// one of its own and report it, never the services' queue.
func TestInProcessQueueIsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--queue-url", "memory://", "stats"},
		{"--queue-url", "memory://", "--json", "topics"},
		{"dlq", "list", "--queue-url", "memory://anything"},
	} {
		out, errOut, status := runMain(t, args...)
		if status != 2 || !strings.Contains(errOut, "inside one process") {
			t.Errorf("queuectl %s: exit status %d, stdout %q, stderr %q; want 2 and an error saying why", strings.Join(args, " "), status, out, errOut)
		}
	}
}
