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
	if got := parseQueueLockTimes(strings.NewReader("orderflow_orders{status=\"open\"} 3\n")); got != nil {
		t.Fatalf("parseQueueLockTimes without the counters: got %+v, want nil", got)
	}
}
