package sqlite

import (
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// holdLockFile takes the queue's lock file as another process's writer
// would (flock and LockFileEx locks belong to the open file, so a second
// open in this process stands for another process) and returns its
// release.
func holdLockFile(t *testing.T, queuePath string) (release func()) {
	t.Helper()
	f, err := os.OpenFile(queuePath+writeLockSuffix, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := lockWait(f); err != nil {
		_ = f.Close()
		t.Fatalf("take the lock file: %v", err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = f.Close() }) }
	t.Cleanup(release)
	return release
}

// A write waits while another process holds the lock file and goes on when
// it lets go.
func TestAWriteWaitsForTheProcessHoldingTheLockFile(t *testing.T) {
	if !fileLocking {
		t.Skip("no file locks on this platform: writes wait for SQLite's lock alone")
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	release := holdLockFile(t, path)

	published := make(chan error, 1)
	go func() { published <- b.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x"))) }()
	select {
	case err := <-published:
		t.Fatalf("Publish returned while another process held the lock file: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-published; err != nil {
		t.Fatalf("Publish after the lock file was released: got %v, want nil", err)
	}
}

// A process stopped while it holds the lock file (SIGSTOP, a debugger)
// holds up the others' writes for BusyTimeout at most: then they go on
// SQLite's lock alone. The second write waits too (the writer opened the
// file again after giving up on a wait), and the waits given up on end
// when the lock is released (TestMain's goleak check would report them
// otherwise).
func TestAWriteGoesOnWithoutTheLockFileAfterBusyTimeout(t *testing.T) {
	if !fileLocking {
		t.Skip("no file locks on this platform: writes wait for SQLite's lock alone")
	}
	const busyTimeout = 100 * time.Millisecond
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := Open(t.Context(), path, Config{BusyTimeout: busyTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	release := holdLockFile(t, path)

	for _, uuid := range []string{"m-1", "m-2"} {
		start := time.Now()
		if err := b.Publisher().Publish("jobs", message.NewMessage(uuid, []byte("x"))); err != nil {
			t.Fatalf("Publish %s while the lock file is held: got %v, want nil after BusyTimeout", uuid, err)
		}
		if waited := time.Since(start); waited < busyTimeout {
			t.Fatalf("Publish %s returned after %s, before BusyTimeout (%s): it did not wait for the lock file", uuid, waited, busyTimeout)
		}
	}
	release()
	// The waits given up on get the lock in turn and let go of it at once.
	probe, err := os.OpenFile(path+writeLockSuffix, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, err := lockNoWait(probe)
		if err != nil {
			t.Fatal(err)
		}
		if held {
			_ = unlockFile(probe)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock file stayed held after its holder let go: a wait given up on kept it")
		}
		time.Sleep(time.Millisecond)
	}
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-3", []byte("x"))); err != nil {
		t.Fatalf("Publish after the lock file was released: got %v, want nil", err)
	}
}

// The writer holds the lock file for its transaction: while one cannot
// start (another connection holds SQLite's lock), the lock file is held.
func TestTheWriterHoldsTheLockFileForItsTransaction(t *testing.T) {
	if !fileLocking {
		t.Skip("no file locks on this platform: writes wait for SQLite's lock alone")
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	requireWriterTakesLockFile(t, b, path)
}

// requireWriterTakesLockFile publishes while SQLite's write lock is held
// elsewhere and requires the writer to hold the lock file meanwhile.
func requireWriterTakesLockFile(t *testing.T, b *Backend, path string) {
	t.Helper()
	sqliteRelease := holdSQLiteLock(t, path)
	published := make(chan error, 1)
	go func() { published <- b.Publisher().Publish("jobs", message.NewMessage("m-4", []byte("x"))) }()
	f, err := os.OpenFile(path+writeLockSuffix, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, err := lockNoWait(f)
		if err != nil {
			t.Fatal(err)
		}
		if !held {
			break // the writer has it
		}
		_ = unlockFile(f)
		if time.Now().After(deadline) {
			t.Fatal("the writer never took the lock file for its transaction")
		}
		time.Sleep(time.Millisecond)
	}
	sqliteRelease()
	if err := <-published; err != nil {
		t.Fatalf("Publish m-4: got %v, want nil", err)
	}
	if held, err := lockNoWait(f); err != nil || !held {
		t.Fatalf("lock file after the transaction: got held=%v err=%v, want it released", held, err)
	}
}

// holdSQLiteLock takes the queue file's SQLite write lock from a connection
// of its own and returns its release.
func holdSQLiteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	tx, err := db.Begin()
	if err != nil {
		t.Fatalf("take the write lock: %v", err)
	}
	return func() { _ = tx.Rollback() }
}
