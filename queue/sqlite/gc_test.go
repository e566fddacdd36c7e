package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// gcFixture is a queue with collection left to the test (GCInterval of an
// hour).
func gcFixture(t *testing.T) *Backend {
	t.Helper()
	b, err := Open(context.Background(), filepath.Join(t.TempDir(), "queue.db"), Config{GCInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// publishN stores n small messages on topic with one request.
func publishN(t *testing.T, b *Backend, topic string, n int) {
	t.Helper()
	op := &publishOp{topic: topic, register: true}
	for range n {
		op.msgs = append(op.msgs, storedMessage{payload: []byte("x"), metadata: "{}"})
	}
	mustSubmit(t, b, op)
}

func mustSubmit(t *testing.T, b *Backend, op writeOp) {
	t.Helper()
	if err := b.submit(op, true); err != nil {
		t.Fatalf("%T: %v", op, err)
	}
}

// ackAll claims up to n deliveries of group on topic and acks them.
func ackAll(t *testing.T, b *Backend, topic, group string, n int) {
	t.Helper()
	claim := &claimOp{topic: topic, group: group, limit: n, leaseMs: 60_000}
	mustSubmit(t, b, claim)
	for _, c := range claim.got {
		mustSubmit(t, b, &ackOp{lease{topic: topic, group: group, messageID: c.messageID, leaseID: c.leaseID}})
	}
}

// A collection deletes what every subscribed group has acked, keeps what
// any group still needs (and everything after it: messages are kept in id
// order), deletes messages of a topic nobody subscribed to once they are
// older than the orphan retention, and leaves topics without messages be.
func TestCollectionDeletesWhatNoGroupStillNeeds(t *testing.T) {
	b := gcFixture(t)
	for _, s := range []subscribeOp{{"shared", "g1"}, {"shared", "g2"}, {"done", "g1"}, {"empty", "g1"}} {
		mustSubmit(t, b, &s)
	}
	publishN(t, b, "shared", 3)
	publishN(t, b, "done", 2)
	publishN(t, b, "orphan", 2)
	ackAll(t, b, "shared", "g1", 3)
	ackAll(t, b, "shared", "g2", 1) // g2 still needs the second and third
	ackAll(t, b, "done", "g1", 2)

	op := &gcOp{batch: 100, orphanBefore: b.nowMs() + 1}
	mustSubmit(t, b, op)
	if op.deleted != 1+2+2 {
		t.Errorf("deleted: got %d, want 5 (shared's first, done's two, orphan's two)", op.deleted)
	}
	for topic, want := range map[string]int{"shared": 2, "done": 0, "orphan": 0, "empty": 0} {
		var got int
		if err := b.readDB.QueryRow(`SELECT COUNT(*) FROM queue_messages WHERE topic = ?`, topic).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("messages left on %s: got %d, want %d", topic, got, want)
		}
	}

	// A message of an unsubscribed topic younger than the retention stays.
	publishN(t, b, "orphan", 1)
	op = &gcOp{batch: 100, orphanBefore: b.nowMs() - time.Hour.Milliseconds()}
	mustSubmit(t, b, op)
	if op.deleted != 0 {
		t.Errorf("deleted with a young orphan: got %d, want 0", op.deleted)
	}
}

// Once every group acked them, collected messages give their pages back to
// the file system (incremental auto-vacuum after each collection): the
// file's free pages go back to none and it shrinks well below its peak.
func TestCollectedMessagesGiveTheirPagesBack(t *testing.T) {
	b, err := Open(context.Background(), filepath.Join(t.TempDir(), "queue.db"), Config{GCInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	pages := func() (count, free int64) {
		t.Helper()
		if err := b.readDB.QueryRow(`PRAGMA page_count`).Scan(&count); err != nil {
			t.Fatal(err)
		}
		if err := b.readDB.QueryRow(`PRAGMA freelist_count`).Scan(&free); err != nil {
			t.Fatal(err)
		}
		return count, free
	}
	mustSubmit(t, b, &subscribeOp{topic: "jobs", group: "g"})
	const messages = 1000
	for range messages / 100 { // 4 MiB of payloads
		op := &publishOp{topic: "jobs", register: true}
		for range 100 {
			op.msgs = append(op.msgs, storedMessage{payload: make([]byte, 4<<10), metadata: "{}"})
		}
		mustSubmit(t, b, op)
	}
	peak, _ := pages()
	ackAll(t, b, "jobs", "g", messages)

	deadline := time.Now().Add(10 * time.Second)
	for {
		count, free := pages()
		if free == 0 && count < peak/10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after every message was acked: %d pages, %d of them free; want none free and fewer than %d (a tenth of the peak)", count, free, peak/10)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Messages of a topic nobody subscribed to go oldest first, as many as a
// collection's batch allows, once they are older than the retention; the
// younger ones stay, also when the batch would reach them.
func TestCollectionDeletesExpiredOrphansOldestFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := Open(context.Background(), path, Config{GCInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	op := &publishOp{topic: "orphan", register: true}
	for range 5 {
		op.msgs = append(op.msgs, storedMessage{payload: []byte("x"), metadata: "{}"})
	}
	mustSubmit(t, b, op)
	// The first three were written two hours ago.
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := b.nowMs() - 2*time.Hour.Milliseconds()
	if _, err := db.Exec(`UPDATE queue_messages SET created_at = ? WHERE id IN (SELECT id FROM queue_messages WHERE topic = 'orphan' ORDER BY id LIMIT 3)`, old); err != nil {
		t.Fatal(err)
	}
	left := func() []int64 {
		t.Helper()
		rows, err := b.readDB.Query(`SELECT created_at FROM queue_messages WHERE topic = 'orphan' ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []int64
		for rows.Next() {
			var c int64
			if err := rows.Scan(&c); err != nil {
				t.Fatal(err)
			}
			got = append(got, c)
		}
		return got
	}
	orphanBefore := b.nowMs() - time.Hour.Milliseconds()
	for i, want := range []int64{2, 1, 0} {
		gc := &gcOp{batch: 2, orphanBefore: orphanBefore}
		mustSubmit(t, b, gc)
		if gc.deleted != want {
			t.Errorf("collection %d: deleted %d, want %d", i+1, gc.deleted, want)
		}
	}
	got := left()
	if len(got) != 2 {
		t.Fatalf("messages left: got %d, want the 2 young ones", len(got))
	}
	for _, c := range got {
		if c < orphanBefore {
			t.Errorf("an expired message is left (created_at %d, retention cut-off %d)", c, orphanBefore)
		}
	}
}
