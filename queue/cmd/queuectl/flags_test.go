package main

import (
	"strings"
	"testing"
)

// Numeric flags out of range are usage errors (exit status 2), as the admin
// API answers 400 to GET /dlq?limit=-1; and a queue URL parameter set to a
// value the store cannot use is one too, naming it (not the default used).
func TestOutOfRangeNumbersAreRejected(t *testing.T) {
	url := seed(t)
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantErr    string // in stderr
	}{
		{"negative limit", []string{"--queue-url", url, "dlq", "list", "--limit", "-1"}, 2, "--limit must be at least 1, got -1"},
		{"zero limit", []string{"--queue-url", url, "dlq", "list", "--limit=0"}, 2, "--limit must be at least 1, got 0"},
		{"negative limit as JSON", []string{"--queue-url", url, "--json", "dlq", "list", "--limit", "-5"}, 2, "--limit must be at least 1, got -5"},
		{"zero interval", []string{"--queue-url", url, "tail", "orders", "--interval", "0s"}, 2, "--interval must be more than 0, got 0s"},
		{"negative interval", []string{"--queue-url", url, "tail", "orders", "--interval=-1s"}, 2, "--interval must be more than 0, got -1s"},
		{"negative id", []string{"--queue-url", url, "dlq", "show", "--", "-3"}, 2, `"-3" is not a dead letter ID`},
		{"zero lease in the URL", []string{"--queue-url", url + "?lease=0s", "stats"}, 2, "lease must be at least 10ms, got 0s"},
		{"zero busy timeout in the URL", []string{"--queue-url", url + "?busy_timeout=0s", "stats"}, 2, "busy_timeout must be at least 1ms, got 0s"},
		{"zero claim batch in the URL", []string{"--queue-url", url + "?claim_batch=0", "stats"}, 2, "claim_batch must be at least 1, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, status := runMain(t, tt.args...)
			if status != tt.wantStatus {
				t.Errorf("exit status: got %d, want %d (stdout %q, stderr %q)", status, tt.wantStatus, out, errOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr: got %q, want it to contain %q", errOut, tt.wantErr)
			}
		})
	}
	// In range, they work, and a URL parameter left out keeps its default.
	for _, args := range [][]string{
		{"--queue-url", url, "dlq", "list", "--limit", "1"},
		{"--queue-url", url + "?lease=10ms&claim_batch=1&ack_delay=0s&nack_delay=0s", "stats"},
	} {
		if out, errOut, status := runMain(t, args...); status != 0 {
			t.Errorf("queuectl %s: exit status %d (stdout %q, stderr %q), want 0", strings.Join(args, " "), status, out, errOut)
		}
	}
}
