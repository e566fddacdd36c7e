package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
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

// Payloads, metadata and errors come from producers: dlq show, dlq list
// and tail quote their control characters, so that an escape sequence in
// them cannot act on the terminal. JSON output escapes them already.
func TestControlCharactersAreQuoted(t *testing.T) {
	url := seed(t)
	q, err := queue.Open(context.Background(), queue.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err = q.Backend().DeadLetters().Put(context.Background(), backend.DeadLetter{
		MessageUUID: "evil", Topic: "orders", ConsumerGroup: "billing\x1b[8m",
		Payload:  []byte("{\"a\":\n\t1}\x1b]0;owned\x07\x1b[2J"),
		Metadata: map[string]string{"type": "x\x1b[31mred", "k\u009b1m": "v\r\n"},
		Attempts: 1, LastError: "boom\x1b[1A\x1b[2Kfine", FirstFailedAt: now, LastFailedAt: now,
	})
	_ = q.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "--queue-url", url, "dlq", "list")
	if err != nil {
		t.Fatal(err)
	}
	id := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "boom") {
			id = strings.Fields(line)[0]
		}
	}
	if id == "" {
		t.Fatalf("dlq list: no line with the error: %q", out)
	}
	show, _, err := runCLI(t, "--queue-url", url, "dlq", "show", id)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]string{"dlq list": out, "dlq show": show} {
		if strings.ContainsAny(got, "\x1b\x07\r\u009b") {
			t.Errorf("%s printed a control character raw: %q", name, got)
		}
	}
	for _, want := range []string{`\x1b]0;owned\a`, `"boom\x1b[1A\x1b[2Kfine"`, `"x\x1b[31mred"`, `"k\u009b1m": "v\r\n"`, `"billing\x1b[8m"`} {
		if !strings.Contains(show, want) {
			t.Errorf("dlq show: got %q, want it to contain %q", show, want)
		}
	}
	// A text payload without control characters still prints as it is.
	plain, _, err := runCLI(t, "--queue-url", url, "dlq", "show", "1")
	if err != nil || !strings.Contains(plain, "\n{\"bad\":true}\n") || !strings.Contains(plain, "Last error:      boom\n") {
		t.Errorf("dlq show 1: got %q (%v), want the payload and error unquoted", plain, err)
	}
}
