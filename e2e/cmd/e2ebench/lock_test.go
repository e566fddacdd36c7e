package main

import (
	"strings"
	"testing"
)

func TestParseQueueLockTimes(t *testing.T) {
	const exposition = `# HELP queue_sqlite_write_lock_held_seconds_total Time held.
# TYPE queue_sqlite_write_lock_held_seconds_total counter
queue_sqlite_write_lock_held_seconds_total{otel_scope_name="github.com/orderflow/orderflow/queue",otel_scope_version=""} 1.25
queue_sqlite_write_lock_wait_seconds_total{otel_scope_name="github.com/orderflow/orderflow/queue"} 3e-01
queue_sqlite_write_transactions_total{otel_scope_name="github.com/orderflow/orderflow/queue"} 4112
queue_sqlite_write_lock_held_seconds_total_other 99
`
	got := parseQueueLockTimes(strings.NewReader(exposition))
	if got == nil || got.Held != 1.25 || got.Wait != 0.3 {
		t.Fatalf("parseQueueLockTimes: got %+v, want held 1.25 s, wait 0.3 s", got)
	}
	for _, tc := range []struct{ name, exposition string }{
		{"neither counter", "orderflow_orders{status=\"open\"} 3\n"},
		{"only one counter", "queue_sqlite_write_lock_held_seconds_total 2\n"},
		{"not a number", "queue_sqlite_write_lock_held_seconds_total NaN\nqueue_sqlite_write_lock_wait_seconds_total 1\n"},
	} {
		if got := parseQueueLockTimes(strings.NewReader(tc.exposition)); got != nil {
			t.Errorf("parseQueueLockTimes with %s: got %+v, want nil", tc.name, got)
		}
	}
	got = parseQueueLockTimes(strings.NewReader("queue_sqlite_write_lock_held_seconds_total{a=\"x y\"} 2\nqueue_sqlite_write_lock_wait_seconds_total 0.5\n"))
	if got == nil || got.Held != 2 || got.Wait != 0.5 {
		t.Errorf("parseQueueLockTimes with a space in a label and none: got %+v, want held 2 s, wait 0.5 s", got)
	}
}
