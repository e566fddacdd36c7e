package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue/sqlite"
)

// Garbage collection deletes every acknowledged message but the newest, so
// that the next message's id (SQLite's largest rowid + 1) is new even
// after everything was collected: a delivery's lease is fenced by
// (message_id, lease_id), and a reused id could let a stale ack delete
// another message's delivery.
func TestMessageIDsAreNeverGivenTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := sqlite.Open(t.Context(), path, sqlite.Config{GCInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	msgs := subscribeWorkers(t, b)
	for _, uuid := range []string{"m-1", "m-2", "m-3"} {
		publishReceiveAck(t, b.Publisher(), msgs, uuid)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	newest := messageID(t, db, "m-3")

	deadline := time.Now().Add(10 * time.Second)
	for {
		var stored int
		if err := db.QueryRow(`SELECT COUNT(*) FROM queue_messages`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages stored after every one was acked: got %d, want 1 (the newest) within 10s", stored)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := messageID(t, db, "m-3"); got != newest {
		t.Fatalf("message kept by garbage collection: got m-3 with id %d, want it with id %d", got, newest)
	}

	publishReceiveAck(t, b.Publisher(), msgs, "m-4")
	if got := messageID(t, db, "m-4"); got <= newest {
		t.Fatalf("id of a message published after collection: got %d, want more than %d (the largest given)", got, newest)
	}
}

// messageID is the stored id of the message with uuid; it fails the test
// when there is none.
func messageID(t *testing.T, db *sql.DB, uuid string) int64 {
	t.Helper()
	var id int64
	if err := db.QueryRow(`SELECT id FROM queue_messages WHERE uuid = ?`, uuid).Scan(&id); err != nil {
		t.Fatalf("id of %s: %v", uuid, err)
	}
	return id
}
