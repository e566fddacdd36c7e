package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend/backendtest"
	"github.com/orderflow/orderflow/queue/sqlite"
)

func TestDeadLettersBefore(t *testing.T) {
	b, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "queue.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	backendtest.DeadLettersBefore(t, b.DeadLetters(), "payment.commands")
}

func TestReplayStamped(t *testing.T) {
	b, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "queue.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	backendtest.ReplayStamped(t, b, queue.ReplayDeadLetter, "payment.commands")
}
