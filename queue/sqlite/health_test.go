package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// pageLimitOp caps (or, with 0, uncaps) the writer connection's file size
// in pages: past it SQLite answers "database or disk is full", as on a
// full disk.
type pageLimitOp struct{ pages int64 }

func (pageLimitOp) standalone() {}

func (op pageLimitOp) apply(ctx context.Context, w *writeTx) error {
	limit := op.pages
	if limit == 0 {
		limit = 1 << 30
	} else {
		var now int64
		if err := w.conn.QueryRowContext(ctx, "PRAGMA page_count").Scan(&now); err != nil {
			return err
		}
		limit = now
	}
	_, err := w.conn.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", limit))
	return err
}

// While the file cannot take writes (full), WriteHealth fails, naming the
// cause; the next commit makes it pass again.
func TestWriteHealthFollowsTheWrites(t *testing.T) {
	b, err := Open(t.Context(), filepath.Join(t.TempDir(), "queue.db"), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pub := b.Publisher()
	if err := pub.Publish("jobs", message.NewMessage("m-0", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteHealth(); err != nil {
		t.Fatalf("after a commit: got %v, want nil", err)
	}
	if err := b.submit(pageLimitOp{pages: 1}, true); err != nil {
		t.Fatal(err)
	}
	var pubErr error
	for i := range 1000 { // until the last free page is used
		if pubErr = pub.Publish("jobs", message.NewMessage(fmt.Sprintf("m-%d", i+1), make([]byte, 8<<10))); pubErr != nil {
			break
		}
	}
	if pubErr == nil {
		t.Fatal("publish on a full file: got no error, want database or disk is full")
	}
	if err := b.WriteHealth(); err == nil || !strings.Contains(err.Error(), "full") {
		t.Errorf("while full: got %v, want an error saying the file is full", err)
	}
	if err := b.submit(pageLimitOp{}, true); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("jobs", message.NewMessage("m-after", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteHealth(); err != nil {
		t.Errorf("after a commit that followed the failures: got %v, want nil", err)
	}
}

// An old failure with no write since does not hold the process unready;
// a commit after a failure ends it at once.
func TestWriteHealthWindow(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	boom := fmt.Errorf("database or disk is full")
	tests := []struct {
		name    string
		record  func(h *writeHealth)
		at      time.Time
		wantErr bool
	}{
		{"nothing recorded", func(*writeHealth) {}, now, false},
		{"commit only", func(h *writeHealth) { h.succeeded(now) }, now, false},
		{"failure just now", func(h *writeHealth) { h.succeeded(now.Add(-time.Minute)); h.failed(now, boom) }, now.Add(time.Second), true},
		{"failure, then a commit", func(h *writeHealth) { h.failed(now, boom); h.succeeded(now.Add(time.Millisecond)) }, now.Add(time.Second), false},
		{"failure past the window", func(h *writeHealth) { h.failed(now, boom) }, now.Add(WriteFailureWindow + time.Second), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h writeHealth
			tc.record(&h)
			if got := h.err(tc.at, WriteFailureWindow); (got != nil) != tc.wantErr {
				t.Errorf("got %v, want an error: %v", got, tc.wantErr)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
