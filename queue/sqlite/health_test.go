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
