package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
)

// adminKeys are the keys of a dead letter in the admin API's GET /dlq
// (pkg/admin.DeadLetter) besides the payload's: "payload" (text, when the
// payload is valid UTF-8) or "payload_base64".
var adminKeys = []string{"attempts", "consumer_group", "dead_at", "first_failed_at", "id", "last_error", "last_failed_at", "message_uuid", "metadata", "payload_size", "topic"}

func keysOf(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// queuectl's --json shows dead letters as the admin API does, so that a
// script can read either: a text payload under "payload" as a string, a
// binary one under "payload_base64".
func TestDLQJSONShowsPayloadsAsTheAdminAPIDoes(t *testing.T) {
	url := seed(t) // three dead letters with the text payload {"bad":true}
	binary := []byte{0xff, 0xfe, 0x00, 'x'}
	q, err := queue.Open(context.Background(), queue.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := q.Backend().DeadLetters().Put(context.Background(), backend.DeadLetter{
		MessageUUID: "dead-binary", Topic: "orders", ConsumerGroup: "billing", Payload: binary,
		Attempts: 1, LastError: "undecodable", FirstFailedAt: now, LastFailedAt: now,
	}); err != nil {
		t.Fatal(err)
	}
	_ = q.Close()

	out, _, err := runCLI(t, "--queue-url", url, "--json", "dlq", "list")
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 4 {
		t.Fatalf("dlq list --json: got %q (%v), want 4 dead letters", out, err)
	}
	check := func(what string, dl map[string]json.RawMessage) {
		t.Helper()
		var uuid string
		_ = json.Unmarshal(dl["message_uuid"], &uuid)
		wantKeys := append(slices.Clone(adminKeys), "payload")
		if uuid == "dead-binary" {
			wantKeys = append(slices.Clone(adminKeys), "payload_base64")
		}
		slices.Sort(wantKeys)
		if got := keysOf(dl); !slices.Equal(got, wantKeys) {
			t.Errorf("%s %s: got keys %v, want the admin API's %v", what, uuid, got, wantKeys)
		}
		if uuid == "dead-binary" {
			var b64 string
			if err := json.Unmarshal(dl["payload_base64"], &b64); err != nil || b64 != base64.StdEncoding.EncodeToString(binary) {
				t.Errorf("%s %s: payload_base64 %s, want %q", what, uuid, dl["payload_base64"], base64.StdEncoding.EncodeToString(binary))
			}
			return
		}
		var text string
		if err := json.Unmarshal(dl["payload"], &text); err != nil || text != `{"bad":true}` {
			t.Errorf(`%s %s: payload %s, want the text {"bad":true} as a JSON string`, what, uuid, dl["payload"])
		}
	}
	for _, dl := range list {
		check("dlq list", dl)
	}

	for _, id := range []string{"1", "4"} {
		out, _, err := runCLI(t, "--queue-url", url, "--json", "dlq", "show", id)
		if err != nil {
			t.Fatal(err)
		}
		var dl map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &dl); err != nil {
			t.Fatalf("dlq show --json %s: got %q (%v)", id, out, err)
		}
		check("dlq show "+id, dl)
	}
}

func TestTailJSONShowsPayloadsAsText(t *testing.T) {
	url := seed(t) // one stored message, pending-1, payload {"n":1}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{b: new(strings.Builder)}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--queue-url", url, "--json", "tail", "orders", "--from-start", "--interval", "10ms"}, out, &strings.Builder{})
	}()
	line := waitForLines(t, out, 1)[0]
	cancel()
	if err := <-done; err != nil {
		t.Errorf("tail: got %v, want nil after cancel", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("tail --json: got %q (%v)", line, err)
	}
	var text string
	if err := json.Unmarshal(m["payload"], &text); err != nil || text != `{"n":1}` {
		t.Errorf(`tail --json: payload %s, want the text {"n":1} as a JSON string (line %s)`, m["payload"], line)
	}
}
