package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// One process at a time checkpoints a queue file: the lock is exclusive
// (flock locks belong to the open file, so a second open in this process
// stands for another process), and it is free again once released.
func TestOneProcessAtATimeLeadsCheckpoints(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), "q.db"+checkpointLockSuffix)
	release, err := tryLeadCheckpoints(lockPath)
	if err != nil || release == nil {
		t.Fatalf("first try: got release=%v err=%v, want the lock", release != nil, err)
	}
	second, err := tryLeadCheckpoints(lockPath)
	if err != nil || second != nil {
		t.Fatalf("second try while held: got release=%v err=%v, want neither", second != nil, err)
	}
	release()
	third, err := tryLeadCheckpoints(lockPath)
	if err != nil || third == nil {
		t.Fatalf("try after release: got release=%v err=%v, want the lock", third != nil, err)
	}
	third()
}

// Committed pages reach the database file in the background, long before
// the 1,000 pages of WAL at which SQLite's automatic checkpoint would copy
// them inside a COMMIT and hold up the writes queued behind it.
func TestCommittedPagesReachTheDatabaseFileInTheBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "q.db")
	be, err := Open(ctx, path, Config{CheckpointInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	sizeOf := func(p string) int64 {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	before := sizeOf(path)
	const payloadBytes = 64 << 10 // 16 pages: far below 1,000
	pub := be.Publisher()
	for i := range 16 {
		m := message.NewMessage(string(rune('a'+i)), []byte(strings.Repeat("x", payloadBytes/16)))
		if err := pub.Publish("checkpointed", m); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for sizeOf(path) < before+payloadBytes {
		if time.Now().After(deadline) {
			t.Fatalf("database file: got %d bytes 10s after the commits, want at least %d (%d before + %d of payloads); WAL %d bytes",
				sizeOf(path), before+payloadBytes, before, payloadBytes, sizeOf(path+"-wal"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(path + checkpointLockSuffix); err != nil {
		t.Errorf("checkpoint lock file: %v", err)
	}
}
