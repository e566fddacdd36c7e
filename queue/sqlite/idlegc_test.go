package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
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

	// Nor on a file that keeps its free pages (made without incremental
	// auto-vacuum, as older files were): a vacuum cannot give them back,
	// so their being there is no work.
	kept := filepath.Join(t.TempDir(), "kept.db")
	db := openFile(t, kept)
	for _, stmt := range []string{
		`PRAGMA auto_vacuum = NONE`,
		`CREATE TABLE filler (b BLOB)`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO filler SELECT randomblob(4096) FROM n`,
		`DROP TABLE filler`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	var free int
	if err := db.QueryRow(`PRAGMA freelist_count`).Scan(&free); err != nil || free == 0 {
		t.Fatalf("free pages of the file: got %d, %v; want some", free, err)
	}
	old := openShared(t, kept, sqlite.Config{GCInterval: time.Millisecond, OrphanRetention: time.Millisecond})
	before = old.WriteStats().Transactions
	time.Sleep(300 * time.Millisecond)
	if got := old.WriteStats().Transactions - before; got != 0 {
		t.Errorf("write transactions of an idle process on a file keeping %d free pages: got %d, want 0", free, got)
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

// Messages acked by a process that stopped before collecting them are
// collected by another, idle one, by its periodic look.
func TestMessagesAckedByAStoppedProcessAreCollectedByAnother(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	acker, err := sqlite.Open(t.Context(), path, sqlite.Config{GCInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := acker.NewSubscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m-1", "m-2", "m-3"} {
		if err := acker.Publisher().Publish("jobs", message.NewMessage(id, nil)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-msgs:
			m.Ack()
		case <-time.After(10 * time.Second):
			t.Fatalf("%s not delivered within 10s", id)
		}
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := acker.Close(); err != nil {
		t.Fatal(err)
	}
	db := openFile(t, path)
	stored := func() int {
		t.Helper()
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM queue_messages`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := stored(); got != 3 {
		t.Fatalf("messages stored once the acking process stopped: got %d, want 3 (acked, not collected)", got)
	}

	openShared(t, path, sqlite.Config{GCInterval: time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for stored() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("messages stored after 10s of another process: got %d, want 0", stored())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
