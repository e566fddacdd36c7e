package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/sqlite"
)

// An idle process takes no write lock: its periodic look for messages of
// topics nobody reads (and for free pages) is a read, and a write follows
// only when there is something to delete. Before, every 60th collection
// interval took the lock in every process, idle or not.
func TestAnIdleProcessTakesNoWriteLockForGarbageCollection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b := openShared(t, path, sqlite.Config{GCInterval: time.Millisecond, OrphanRetention: time.Millisecond})
	before := b.WriteStats().Transactions
	time.Sleep(300 * time.Millisecond) // 300 collection intervals: 5 orphan checks
	if got := b.WriteStats().Transactions - before; got != 0 {
		t.Errorf("write transactions of an idle process: got %d, want 0", got)
	}

	// A message of a topic nobody reads is collected once past the
	// retention, by the same look.
	if err := b.Publisher().Publish("nobody.reads", message.NewMessage("m-1", nil)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		stats, err := b.Inspector().Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		stored := int64(-1)
		for _, s := range stats {
			if s.Topic == "nobody.reads" {
				stored = s.Stored
			}
		}
		if stored == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages stored in a topic nobody reads after 10s: got %d, want 0", stored)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
