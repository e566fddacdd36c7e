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
