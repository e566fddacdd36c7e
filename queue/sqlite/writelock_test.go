package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// holdLockFile takes the queue's lock file as another process's writer
// would (flock and LockFileEx locks belong to the open file, so a second
// open in this process stands for another process) and returns its
// release.
func holdLockFile(t *testing.T, queuePath string) (release func()) {
	t.Helper()
	f, err := openLockFile(queuePath+writeLockSuffix, queuePath)
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

// openOnLockFile opens a queue in a new directory for a test of the lock
// file (skipped where there are no file locks), closed when the test ends.
func openOnLockFile(t *testing.T, cfg Config) (b *Backend, path string) {
	t.Helper()
	if !fileLocking {
		t.Skip("no file locks on this platform: writes wait for SQLite's lock alone")
	}
	path = filepath.Join(t.TempDir(), "queue.db")
	b, err := Open(t.Context(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, path
}

// requirePublishWaitsFor publishes on b in the background and requires
// the Publish to be still waiting a moment later, while what holder names
// holds a lock, and to succeed once release let go of it.
func requirePublishWaitsFor(t *testing.T, b *Backend, holder string, release func()) {
	t.Helper()
	published := publishInBackground(b, "m-1")
	select {
	case err := <-published:
		t.Fatalf("Publish returned while %s: %v", holder, err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("Publish after the lock was released: got %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Publish did not return within 30s of the lock's release")
	}
}

// publishInBackground publishes a message with uuid on "jobs" and answers
// on the returned channel.
func publishInBackground(b *Backend, uuid string) <-chan error {
	published := make(chan error, 1)
	go func() { published <- b.Publisher().Publish("jobs", message.NewMessage(uuid, []byte("x"))) }()
	return published
}

// A write waits while another process holds the lock file and goes on when
// it lets go.
func TestAWriteWaitsForTheProcessHoldingTheLockFile(t *testing.T) {
	b, path := openOnLockFile(t, Config{})
	requirePublishWaitsFor(t, b, "another process held the lock file", holdLockFile(t, path))
	// The wait shows in the process's lock statistics (and metrics). The
	// test's 100ms run from before the writer took the request, so the
	// writer measured a little less (99.99ms once in CI): ask for half.
	if got := b.WriteStats(); got.LockWait < 50*time.Millisecond || got.LockHeld <= 0 {
		t.Fatalf("lock times after a wait of about 100ms: got wait %s, held %s; want at least 50ms and more than 0", got.LockWait, got.LockHeld)
	}
}

// A process stopped while it holds the lock file (SIGSTOP, a debugger)
// holds up another process's write for BusyTimeout; then that write goes
// on SQLite's lock alone, and so do the next ones, without waiting for the
// file, while the wait given up on is still blocked. That wait ends when
// the lock is released (TestMain's goleak check would report it
// otherwise).
func TestWritesGoOnWithoutTheLockFileWhileItsHolderIsStopped(t *testing.T) {
	const busyTimeout = time.Second
	b, path := openOnLockFile(t, Config{BusyTimeout: busyTimeout})
	release := holdLockFile(t, path)
	defer release()

	start := time.Now()
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x"))); err != nil {
		t.Fatalf("Publish m-1 while the lock file is held: got %v, want nil after BusyTimeout", err)
	}
	if waited := time.Since(start); waited < busyTimeout {
		t.Fatalf("Publish m-1 returned after %s, before BusyTimeout (%s): it did not wait for the lock file", waited, busyTimeout)
	}
	start = time.Now()
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-2", []byte("x"))); err != nil {
		t.Fatalf("Publish m-2 while the lock file is still held: got %v, want nil", err)
	}
	if waited := time.Since(start); waited >= busyTimeout {
		t.Fatalf("Publish m-2 took %s: it waited for the lock file again instead of going without it", waited)
	}
}

// A write that gave up waiting for the lock file still waits for SQLite's
// lock, for a BusyTimeout of its own: several processes give up on a
// stopped holder at about the same moment, and with the deadline already
// spent each would try BEGIN once and all but the first would fail.
func TestAWriteThatGaveUpOnTheLockFileStillWaitsForSQLitesLock(t *testing.T) {
	const busyTimeout = 300 * time.Millisecond
	b, path := openOnLockFile(t, Config{BusyTimeout: busyTimeout})
	release := holdLockFile(t, path)
	defer release()
	sqliteRelease := holdSQLiteLock(t, path)
	published := publishInBackground(b, "m-1")
	// Past the wait for the lock file, into the wait for SQLite's lock.
	time.Sleep(busyTimeout + busyTimeout/2)
	select {
	case err := <-published:
		t.Fatalf("Publish returned while another connection held SQLite's lock: %v", err)
	default:
	}
	sqliteRelease()
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("Publish after SQLite's lock was released: got %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Publish did not return within 30s of SQLite's lock's release")
	}
}

// After a wait given up on has ended, the writer opens the lock file again
// and takes turns on it as before.
func TestTheLockFileIsUsedAgainAfterAWaitGivenUpOnEnds(t *testing.T) {
	if !fileLocking {
		t.Skip("no file locks on this platform")
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	l := openWriteLock(path+writeLockSuffix, path, watermill.NopLogger{})
	defer l.close()
	release := holdLockFile(t, path)

	if l.acquire(time.Now().Add(50*time.Millisecond), nil) {
		t.Fatal("acquire while another process holds the lock: got true, want false at the deadline")
	}
	if l.acquire(time.Now().Add(time.Hour), nil) {
		t.Fatal("acquire while the wait given up on is blocked: got true, want false at once")
	}
	release()
	select {
	case <-l.waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the wait given up on did not end after the lock was released")
	}
	if !l.acquire(time.Now().Add(10*time.Second), nil) {
		t.Fatal("acquire after the wait given up on ended: got false, want the lock")
	}
	other, err := os.OpenFile(path+writeLockSuffix, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if held, err := lockNoWait(other); err != nil || held {
		t.Fatalf("another process's try while acquired: got held=%v err=%v, want neither", held, err)
	}
	l.release()
	if held, err := lockNoWait(other); err != nil || !held {
		t.Fatalf("another process's try after release: got held=%v err=%v, want the lock", held, err)
	}
}

// The writer holds the lock file for its transaction: while one cannot
// start (another connection holds SQLite's lock), the lock file is held.
func TestTheWriterHoldsTheLockFileForItsTransaction(t *testing.T) {
	b, path := openOnLockFile(t, Config{})
	sqliteRelease := holdSQLiteLock(t, path)
	published := publishInBackground(b, "m-1")
	f, err := openLockFile(path+writeLockSuffix, path)
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
		t.Fatalf("Publish: got %v, want nil", err)
	}
	if held, err := lockNoWait(f); err != nil || !held {
		t.Fatalf("lock file after the transaction: got held=%v err=%v, want it released", held, err)
	}
}

// holdSQLiteLock takes the queue file's SQLite write lock from a connection
// of its own, as another process would, and returns its release.
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

// A writer that could not open the lock file (here: its directory is not
// there yet) goes without it, and opens it once it can.
func TestTheLockFileIsOpenedOnceItCanBe(t *testing.T) {
	if !fileLocking {
		t.Skip("no file locks on this platform")
	}
	dir := filepath.Join(t.TempDir(), "later")
	l := openWriteLock(filepath.Join(dir, "queue.db"+writeLockSuffix), filepath.Join(dir, "queue.db"), watermill.NopLogger{})
	defer l.close()
	if l.acquire(time.Now().Add(time.Second), nil) {
		t.Fatal("acquire without a lock file: got true, want false")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l.retryOpen = time.Now() // rather than wait reopenEvery
	if !l.acquire(time.Now().Add(time.Second), nil) {
		t.Fatal("acquire once the file can be opened: got false, want the lock")
	}
	l.release()
}

// With NoLockFile (lock_file=false) a write does not wait for the lock
// file, and the writer creates none.
func TestWithoutTheLockFileAWriteDoesNotWaitForIt(t *testing.T) {
	b, path := openOnLockFile(t, Config{NoLockFile: true})
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-0", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + writeLockSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file with NoLockFile: got %v, want none", err)
	}
	release := holdLockFile(t, path)
	defer release()
	select {
	case err := <-publishInBackground(b, "m-1"):
		if err != nil {
			t.Fatalf("Publish while another process holds the lock file: got %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Publish waited for the lock file although NoLockFile is set")
	}
}

// rolledBackOp stands for a statement after which SQLite rolled the
// transaction back itself, as it may on SQLITE_FULL or SQLITE_IOERR.
type rolledBackOp struct{}

func (rolledBackOp) apply(ctx context.Context, w *writeTx) error {
	if _, err := w.conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		return err
	}
	return errors.New("database or disk is full (simulated)")
}

// An op after which SQLite had already rolled the transaction back gets
// its own error, not the ROLLBACK's "no transaction is active", and the
// ops that shared its batch are committed without it.
func TestAnOpThatSQLiteRolledBackFailsAloneWithItsOwnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Both requests queue while another connection holds SQLite's lock,
	// so that they share one transaction.
	sqliteRelease := holdSQLiteLock(t, path)
	failed := make(chan error, 1)
	go func() { failed <- b.submit(rolledBackOp{}, true) }()
	published := publishInBackground(b, "m-1")
	time.Sleep(100 * time.Millisecond)
	sqliteRelease()
	answer := func(what string, ch <-chan error) error {
		t.Helper()
		select {
		case err := <-ch:
			return err
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no answer within 30s", what)
			return nil
		}
	}
	if err := answer("the op SQLite rolled back", failed); err == nil || !strings.Contains(err.Error(), "simulated") {
		t.Errorf("the op SQLite rolled back: got %v, want its own error", err)
	}
	if err := answer("the publish beside it", published); err != nil {
		t.Errorf("the publish beside it: got %v, want nil", err)
	}
	if err := <-publishInBackground(b, "m-2"); err != nil {
		t.Fatalf("a publish after: got %v, want nil", err)
	}
}
