package sqlite

import (
	"context"
	"database/sql"
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
	if !checkpointLockExclusive {
		t.Skip("no exclusive file lock on this platform: every process checkpoints")
	}
	lockPath := filepath.Join(t.TempDir(), "q.db"+checkpointLockSuffix)
	release, err := tryLeadCheckpoints(lockPath, "")
	if err != nil || release == nil {
		t.Fatalf("first try: got release=%v err=%v, want the lock", release != nil, err)
	}
	second, err := tryLeadCheckpoints(lockPath, "")
	if err != nil || second != nil {
		t.Fatalf("second try while held: got release=%v err=%v, want neither", second != nil, err)
	}
	release()
	third, err := tryLeadCheckpoints(lockPath, "")
	if err != nil || third == nil {
		t.Fatalf("try after release: got release=%v err=%v, want the lock", third != nil, err)
	}
	third()
}

// Committed pages reach the database file in the background, long before
// the 1,000 pages of WAL at which SQLite's automatic checkpoint would copy
// them inside a COMMIT and hold up the writes queued behind it.
func TestCommittedPagesReachTheDatabaseFileInTheBackground(t *testing.T) {
	path, be := openCheckpointing(t)
	before := fileSizeOf(t, path)
	publishPayloads(t, be)
	deadline := time.Now().Add(10 * time.Second)
	for fileSizeOf(t, path) < before+payloadsBytes {
		if time.Now().After(deadline) {
			t.Fatalf("database file: got %d bytes 10s after the commits, want at least %d (%d before + %d of payloads); WAL %d bytes",
				fileSizeOf(t, path), before+payloadsBytes, before, payloadsBytes, fileSizeOf(t, path+"-wal"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(path + checkpointLockSuffix); checkpointLockExclusive && err != nil {
		t.Errorf("checkpoint lock file: %v", err)
	}
}

// A checkpoint that a reader's snapshot kept from copying the whole log is
// tried again after the reader is gone, although nothing is written
// meanwhile: otherwise the rest would wait for SQLite's automatic
// checkpoint inside a COMMIT.
func TestAPartialCheckpointIsCompletedWithoutFurtherWrites(t *testing.T) {
	path, be := openCheckpointing(t)
	snapshot := holdSnapshot(t, path)
	before := fileSizeOf(t, path)
	publishPayloads(t, be)
	time.Sleep(200 * time.Millisecond) // checkpoints run, held back by the snapshot
	if got := fileSizeOf(t, path); got >= before+payloadsBytes {
		t.Fatalf("database file grew to %d bytes while a reader held an older snapshot, want it held back (this test's premise)", got)
	}
	if err := snapshot.Rollback(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for fileSizeOf(t, path) < before+payloadsBytes {
		if time.Now().After(deadline) {
			t.Fatalf("database file: got %d bytes 10s after the reader ended, with no writes since, want at least %d",
				fileSizeOf(t, path), before+payloadsBytes)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fileSizeOf(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// A process that cannot use the lock file (here a directory stands in
// its place) checkpoints anyway rather than leaving the WAL to SQLite's
// automatic checkpoint.
func TestWithoutAUsableLockFileTheProcessCheckpointsAnyway(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "q.db"+checkpointLockSuffix), 0o755); err != nil {
		t.Fatal(err)
	}
	path, be := openCheckpointingAt(t, filepath.Join(dir, "q.db"))
	before := fileSizeOf(t, path)
	publishPayloads(t, be)
	deadline := time.Now().Add(10 * time.Second)
	for fileSizeOf(t, path) < before+payloadsBytes {
		if time.Now().After(deadline) {
			t.Fatalf("database file: got %d bytes 10s after the commits, want at least %d", fileSizeOf(t, path), before+payloadsBytes)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openCheckpointing opens a queue in a new file whose checkpoint loop
// looks every 20 ms; it is closed when the test ends.
func openCheckpointing(t *testing.T) (path string, be *Backend) {
	t.Helper()
	return openCheckpointingAt(t, filepath.Join(t.TempDir(), "q.db"))
}

// openCheckpointingAt is openCheckpointing at a given path.
func openCheckpointingAt(t *testing.T, path string) (string, *Backend) {
	t.Helper()
	be, err := Open(context.Background(), path, Config{CheckpointInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return path, be
}

// payloadsBytes is what publishPayloads publishes: 16 pages of 4 KiB, far
// below the 1,000 pages at which SQLite's automatic checkpoint runs.
const payloadsBytes = 64 << 10

// publishPayloads publishes 16 messages of payloadsBytes in all, each in a
// commit of its own.
func publishPayloads(t *testing.T, be *Backend) {
	t.Helper()
	pub := be.Publisher()
	for i := range 16 {
		m := message.NewMessage(string(rune('a'+i)), []byte(strings.Repeat("x", payloadsBytes/16)))
		if err := pub.Publish("checkpointed", m); err != nil {
			t.Fatal(err)
		}
	}
}

// A write-ahead log that outgrew WALLimit while a reader's snapshot kept
// the checkpoints from copying it goes back under the limit once the
// reader is gone, with nothing written meanwhile: the checkpoint loop
// truncates it (SQLite's journal_size_limit would only act at the next
// write, which may not come).
func TestAWALPastItsLimitIsTruncatedWithoutFurtherWrites(t *testing.T) {
	const limit = 128 << 10
	path := filepath.Join(t.TempDir(), "q.db")
	be, err := Open(t.Context(), path, Config{CheckpointInterval: 20 * time.Millisecond, WALLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	snapshot := holdSnapshot(t, path)
	for range 8 { // 512 KiB of payloads, four times the limit
		publishPayloads(t, be)
	}
	time.Sleep(100 * time.Millisecond) // the loop looks, held back by the snapshot
	if got := fileSizeOf(t, path+"-wal"); got <= limit {
		t.Fatalf("WAL: got %d bytes while a reader held an older snapshot, want more than the %d-byte limit (this test's premise)", got, limit)
	}
	if err := snapshot.Rollback(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for fileSizeOf(t, path+"-wal") > limit {
		if time.Now().After(deadline) {
			t.Fatalf("WAL: got %d bytes 10s after the reader ended, with no writes since, want at most the %d-byte limit",
				fileSizeOf(t, path+"-wal"), limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holdSnapshot starts a read transaction on the queue file at path, from
// a connection of its own (another process's reader), and reads in it, so
// that it holds its snapshot until rolled back: checkpoints cannot copy
// the log past it meanwhile.
func holdSnapshot(t *testing.T, path string) *sql.Tx {
	t.Helper()
	reader, err := sql.Open("sqlite3", "file:"+path+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reader.Close() })
	snapshot, err := reader.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := snapshot.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM queue_messages").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return snapshot
}
