package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
)

// seed makes a queue file with one group on "orders", three dead letters and
// one pending message.
func seed(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "q.db")
	q, err := queue.Open(context.Background(), queue.Config{URL: "sqlite://" + path})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	sub, err := q.Backend().Subscriber(backend.SubscriberConfig{ConsumerGroup: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.(message.SubscribeInitializer).SubscribeInitialize("orders"); err != nil {
		t.Fatal(err)
	}
	_ = sub.Close()
	if err := q.Publisher().Publish("orders", message.NewMessage("pending-1", []byte(`{"n":1}`))); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, topic := range []string{"orders", "orders", "payments"} {
		err := q.Backend().DeadLetters().Put(context.Background(), backend.DeadLetter{
			MessageUUID: "dead-" + string(rune('a'+i)), Topic: topic, ConsumerGroup: "billing",
			Payload: []byte(`{"bad":true}`), Metadata: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			Attempts: 5, LastError: "boom", FirstFailedAt: now, LastFailedAt: now,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return "sqlite://" + path
}

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestCommandsPrintWhatTheQueueHolds(t *testing.T) {
	url := seed(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"topics", []string{"topics"}, []string{"orders\npayments\n"}},
		{"stats table", []string{"stats"}, []string{"TOPIC", "orders", "billing", "payments"}},
		{"dlq list", []string{"dlq", "list"}, []string{"ID", "orders", "boom", "payments"}},
		{"dlq list by topic", []string{"dlq", "list", "--topic", "payments"}, []string{"payments"}},
		{"dlq show", []string{"dlq", "show", "1"}, []string{"Message UUID:    dead-a", "Attempts:        5", "traceparent: 00-4bf9", `{"bad":true}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runCLI(t, append([]string{"--queue-url", url}, tt.args...)...)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output:\n%s\nwant it to contain %q", out, w)
				}
			}
		})
	}
	out, _, err := runCLI(t, "--queue-url", url, "dlq", "list", "--topic", "payments")
	if err != nil || strings.Contains(out, "dead-a") {
		t.Errorf("dlq list --topic payments: got %q (err %v), want only the payments dead letter", out, err)
	}
}

func TestJSONOutputDecodes(t *testing.T) {
	url := seed(t)
	out, _, err := runCLI(t, "--queue-url", url, "--json", "dlq", "list")
	if err != nil {
		t.Fatal(err)
	}
	var dls []backend.DeadLetterView
	if err := json.Unmarshal([]byte(out), &dls); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if len(dls) != 3 || dls[0].Attempts != 5 || dls[0].LastError != "boom" {
		t.Errorf("got %+v, want 3 dead letters with 5 attempts and error boom", dls)
	}
	out, _, err = runCLI(t, "--queue-url", url, "--json", "stats")
	if err != nil {
		t.Fatal(err)
	}
	var stats []backend.TopicStats
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		t.Fatalf("decode stats %q: %v", out, err)
	}
	if len(stats) != 2 || stats[0].Topic != "orders" || stats[0].Groups[0].Depth != 1 || stats[0].DeadLetters != 2 {
		t.Errorf("stats: got %+v, want orders with depth 1 and 2 dead letters first", stats)
	}
}

func TestReplayAndPurge(t *testing.T) {
	url := seed(t)
	if out, _, err := runCLI(t, "--queue-url", url, "dlq", "replay", "1"); err != nil || !strings.Contains(out, "replayed dead letter 1") {
		t.Fatalf("replay 1: got %q, %v", out, err)
	}
	out, _, err := runCLI(t, "--queue-url", url, "--json", "stats")
	if err != nil {
		t.Fatal(err)
	}
	var stats []backend.TopicStats
	_ = json.Unmarshal([]byte(out), &stats)
	if got := stats[0].Groups[0].Depth; got != 2 {
		t.Errorf("depth of orders/billing after replay: got %d, want 2", got)
	}
	if out, _, err := runCLI(t, "--queue-url", url, "dlq", "replay", "--all", "--topic", "payments"); err != nil || out != "replayed 1 dead letter\n" {
		t.Errorf("replay --all --topic payments: got %q, %v", out, err)
	}
	if _, _, err := runCLI(t, "--queue-url", url, "dlq", "purge"); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("purge without --yes: got %v, want a usage error asking for --yes", err)
	}
	if out, _, err := runCLI(t, "--queue-url", url, "dlq", "purge", "--yes"); err != nil || out != "purged 1 dead letter\n" {
		t.Errorf("purge --yes: got %q, %v", out, err)
	}
}

func TestMistakesGetClearErrors(t *testing.T) {
	url := seed(t)
	missing := "sqlite://" + filepath.Join(t.TempDir(), "none.db")
	tests := []struct {
		name      string
		args      []string
		wantInErr string
		usage     bool
	}{
		{"no command", []string{"--queue-url", url}, "no command given", true},
		{"unknown command", []string{"--queue-url", url, "frobnicate"}, `unknown command "frobnicate"`, true},
		{"dlq without subcommand", []string{"--queue-url", url, "dlq"}, "needs a subcommand", true},
		{"show needs id", []string{"--queue-url", url, "dlq", "show"}, "exactly one dead letter ID", true},
		{"show bad id", []string{"--queue-url", url, "dlq", "show", "abc"}, `"abc" is not a dead letter ID`, true},
		{"show unknown id", []string{"--queue-url", url, "dlq", "show", "999"}, "dead letter 999: not found", false},
		{"replay id and --all", []string{"--queue-url", url, "dlq", "replay", "--all", "3"}, "either one ID, or --all", true},
		{"replay needs an id or --all", []string{"--queue-url", url, "dlq", "replay"}, "dlq replay needs one dead letter ID, or --all", true},
		{"tail bad topic", []string{"--queue-url", url, "tail", "a b"}, "not allowed", true},
		{"missing file", []string{"--queue-url", missing, "stats"}, "no such file (is the queue URL right?)", false},
		{"bad scheme", []string{"--queue-url", "mysql://x", "stats"}, `unsupported scheme "mysql"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCLI(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantInErr)
			}
			var ue usageError
			if got := errors.As(err, &ue); got != tt.usage {
				t.Errorf("usage error (exit 2): got %v, want %v", got, tt.usage)
			}
		})
	}
}

// tail names a topic the queue does not know on stderr, with the known
// ones, and waits on for it; a known topic gets no such note.
func TestTailSaysWhenTheTopicIsUnknown(t *testing.T) {
	tests := []struct {
		topic      string
		wantStderr string
	}{
		{"nosuch.topic", "queuectl: tail: no topic \"nosuch.topic\" yet (known: orders, payments); waiting for it\n"},
		{"orders", ""},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			url := seed(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stdout, stderr bytes.Buffer
			done := make(chan error, 1)
			go func() {
				// --from-start, so that a known topic's stored messages show
				// tail got past the note: the sign that it runs.
				done <- run(ctx, []string{"--queue-url", url, "tail", tt.topic, "--from-start", "--interval", "10ms"},
					&lockedBuffer{b: &stdout}, &lockedBuffer{b: &stderr})
			}()
			// Cancel only once tail has looked for the topic: the note on
			// stderr, or a stored message printed after it found none due.
			running := func() bool {
				if tt.wantStderr != "" {
					return strings.Contains(readLocked(&stderr), tt.wantStderr)
				}
				return strings.Contains(readLocked(&stdout), "pending-1")
			}
			deadline := time.After(30 * time.Second)
			for !running() {
				select {
				case err := <-done:
					t.Fatalf("tail %s ended: got %v, want it to wait until cancelled (stderr %q)", tt.topic, err, readLocked(&stderr))
				case <-deadline:
					t.Fatalf("tail %s: no sign of running in 30s; stdout %q, stderr %q", tt.topic, readLocked(&stdout), readLocked(&stderr))
				case <-time.After(10 * time.Millisecond):
				}
			}
			// Still waiting (the topic may appear later) after a few more looks.
			select {
			case err := <-done:
				t.Fatalf("tail %s ended: got %v, want it to wait until cancelled", tt.topic, err)
			case <-time.After(100 * time.Millisecond):
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("tail %s after cancel: got %v, want nil", tt.topic, err)
			}
			if got := readLocked(&stderr); got != tt.wantStderr {
				t.Errorf("tail %s stderr: got %q, want %q", tt.topic, got, tt.wantStderr)
			}
		})
	}
}

func TestTailPrintsNewMessagesUntilCancelled(t *testing.T) {
	url := seed(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--queue-url", url, "--json", "tail", "orders", "--from-start", "--interval", "10ms"}, &lockedBuffer{b: &out}, &bytes.Buffer{})
	}()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(readLocked(&out), "pending-1") {
		select {
		case <-deadline:
			t.Fatalf("tail printed %q, want the pending message", readLocked(&out))
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("tail after cancel: got %v, want nil", err)
	}
}

// --older-than selects the dead letters last dead-lettered longer ago: a
// purge keeps the recent ones, the only way dead letters ever go.
func TestOlderThanSelectsOldDeadLetters(t *testing.T) {
	url := seed(t) // three dead letters of now
	b, err := queue.OpenBackend(context.Background(), queue.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-40 * 24 * time.Hour)
	err = b.DeadLetters().Put(context.Background(), backend.DeadLetter{MessageUUID: "old-1", Topic: "orders", ConsumerGroup: "billing",
		Payload: []byte(`{}`), Attempts: 5, LastError: "long ago", FirstFailedAt: old, LastFailedAt: old, DeadAt: old})
	_ = b.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "--queue-url", url, "--json", "dlq", "list", "--older-than", "720h")
	if err != nil {
		t.Fatal(err)
	}
	var dls []backend.DeadLetterView
	if err := json.Unmarshal([]byte(out), &dls); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if len(dls) != 1 || dls[0].MessageUUID != "old-1" {
		t.Errorf("dlq list --older-than 720h: got %+v, want only old-1", dls)
	}
	if out, _, err := runCLI(t, "--queue-url", url, "dlq", "purge", "--older-than", "720h", "--yes"); err != nil || out != "purged 1 dead letter\n" {
		t.Errorf("purge --older-than 720h: got %q, %v, want 1 purged", out, err)
	}
	if out, _, err := runCLI(t, "--queue-url", url, "--json", "dlq", "list"); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal([]byte(out), &dls); err != nil || len(dls) != 3 {
		t.Errorf("left after the purge: got %d (%v), want the 3 recent ones", len(dls), err)
	}
	for _, args := range [][]string{
		{"dlq", "purge", "--older-than", "-1h", "--yes"},
		{"dlq", "replay", "1", "--older-than", "1h"},
	} {
		_, _, err := runCLI(t, append([]string{"--queue-url", url}, args...)...)
		var usage usageError
		if !errors.As(err, &usage) {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
}
