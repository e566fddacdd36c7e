package writehealth_test

import (
	"errors"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue/writehealth"
)

// An old failure with no write since does not hold a process unready; a
// commit after a failure ends it at once.
func TestRecordWindow(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	boom := errors.New("database or disk is full")
	tests := []struct {
		name    string
		record  func(h *writehealth.Record)
		at      time.Time
		wantErr bool
	}{
		{"nothing recorded", func(*writehealth.Record) {}, now, false},
		{"commit only", func(h *writehealth.Record) { h.Succeeded(now) }, now, false},
		{"failure just now", func(h *writehealth.Record) { h.Succeeded(now.Add(-time.Minute)); h.Failed(now, boom) }, now.Add(time.Second), true},
		{"failure, then a commit", func(h *writehealth.Record) { h.Failed(now, boom); h.Succeeded(now.Add(time.Millisecond)) }, now.Add(time.Second), false},
		{"failure past the window", func(h *writehealth.Record) { h.Failed(now, boom) }, now.Add(writehealth.FailureWindow + time.Second), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h writehealth.Record
			tc.record(&h)
			got := h.Err(tc.at)
			if (got != nil) != tc.wantErr {
				t.Fatalf("got %v, want an error: %v", got, tc.wantErr)
			}
			if got != nil && !errors.Is(got, boom) {
				t.Errorf("got %v, want it to wrap the last failure", got)
			}
		})
	}
}
