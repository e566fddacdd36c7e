package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

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

// Format characters (category Cf) reorder or hide what a terminal shows,
// as control characters can: printable and printableText quote them too.
func TestPrintableQuotesFormatCharacters(t *testing.T) {
	tests := []struct {
		name, in      string
		wantText      string // printableText(in)
		wantMultiline string // printable([]byte(in))
	}{
		{"plain", "charge o-1", "charge o-1", "charge o-1"},
		{"non-ASCII letters", "café ✓", "café ✓", "café ✓"},
		{"newline and tab", "a\n\tb", `"a\n\tb"`, "a\n\tb"},
		{"right-to-left override", "boom\u202eenif", `"boom\u202eenif"`, `"boom\u202eenif"`},
		{"left-to-right embedding", "\u202ax", `"\u202ax"`, `"\u202ax"`},
		{"pop directional formatting", "x\u202c", `"x\u202c"`, `"x\u202c"`},
		{"right-to-left isolate", "\u2067x\u2069", `"\u2067x\u2069"`, `"\u2067x\u2069"`},
		{"left-to-right mark", "x\u200e", `"x\u200e"`, `"x\u200e"`},
		{"right-to-left mark", "x\u200f", `"x\u200f"`, `"x\u200f"`},
		{"Arabic letter mark", "x\u061c", `"x\u061c"`, `"x\u061c"`},
		{"zero-width space", "pay\u200bment", `"pay\u200bment"`, `"pay\u200bment"`},
		{"zero-width joiner", "a\u200db", `"a\u200db"`, `"a\u200db"`},
		{"byte order mark", "\ufeff{}", `"\ufeff{}"`, `"\ufeff{}"`},
		{"escape", "x\x1b[2J", `"x\x1b[2J"`, `"x\x1b[2J"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := printableText(tt.in); got != tt.wantText {
				t.Errorf("printableText(%q) = %q, want %q", tt.in, got, tt.wantText)
			}
			if got := string(printable([]byte(tt.in))); got != tt.wantMultiline {
				t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.wantMultiline)
			}
		})
	}
}

// A right-to-left override in a topic, a consumer group, a payload or an
// error is quoted by topics, stats, dlq list and dlq show, so that it
// cannot turn around what the operator reads.
func TestBidiOverridesAreQuoted(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "q.db")
	url := "sqlite://" + path
	q, err := queue.Open(ctx, queue.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	const group, topic = "billing\u202e", "orders\u202e"
	sub, err := q.Backend().Subscriber(backend.SubscriberConfig{ConsumerGroup: group})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.(message.SubscribeInitializer).SubscribeInitialize("orders"); err != nil {
		t.Fatal(err)
	}
	_ = sub.Close()
	now := time.Now()
	err = q.Backend().DeadLetters().Put(ctx, backend.DeadLetter{
		MessageUUID: "dead-a", Topic: topic, ConsumerGroup: group,
		Payload: []byte("{\"note\":\"\u202e}1:\\\"a\\\"{\"}"), Metadata: map[string]string{},
		Attempts: 1, LastError: "boom\u202eenif", FirstFailedAt: now, LastFailedAt: now,
	})
	_ = q.Close()
	if err != nil {
		t.Fatal(err)
	}
	wants := map[string][]string{
		"topics":   {`"orders\u202e"`},
		"stats":    {`"orders\u202e"`, `"billing\u202e"`},
		"dlq list": {`"orders\u202e"`, `"billing\u202e"`, `"boom\u202eenif"`},
		"dlq show": {`"orders\u202e"`, `"billing\u202e"`, `"boom\u202eenif"`, `\u202e}1:`},
	}
	for cmd, want := range wants {
		args := append([]string{"--queue-url", url}, strings.Fields(cmd)...)
		if cmd == "dlq show" {
			args = append(args, "1")
		}
		out, _, err := runCLI(t, args...)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if strings.ContainsRune(out, '\u202e') {
			t.Errorf("%s printed U+202E raw: %q", cmd, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: got %q, want it to contain %s", cmd, out, w)
			}
		}
		// As JSON too: escaped, and the same text once decoded.
		out, _, err = runCLI(t, append(args, "--json")...)
		if err != nil {
			t.Fatalf("%s --json: %v", cmd, err)
		}
		if strings.ContainsRune(out, '\u202e') {
			t.Errorf("%s --json printed U+202E raw: %q", cmd, out)
		}
		var decoded any
		if err := json.Unmarshal([]byte(out), &decoded); err != nil {
			t.Errorf("%s --json: got %q, not JSON: %v", cmd, out, err)
		} else if b, _ := json.Marshal(decoded); !strings.Contains(string(b), "orders\u202e") {
			t.Errorf("%s --json decoded: got %s, want the topic orders\u202e in it", cmd, b)
		}
	}
}
