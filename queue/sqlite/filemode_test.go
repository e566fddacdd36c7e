package sqlite

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// filesBeside are the files of a queue at path: the database, SQLite's
// -wal and -shm, and the queue's lock files where there are file locks.
func filesBeside(path string) []string {
	files := []string{path, path + "-wal", path + "-shm"}
	if fileLocking {
		files = append(files, path+writeLockSuffix, path+checkpointLockSuffix)
	}
	return files
}

// openQueue opens the queue at path for the test, checkpointing often.
func openQueue(t *testing.T, path string) *Backend {
	t.Helper()
	b, err := Open(t.Context(), path, Config{CheckpointInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// requireModes waits until every file of the queue at path exists (the
// checkpoint lock comes with the first checkpoint round) and requires
// each to have permissions want.
func requireModes(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, f := range filesBeside(path) {
		for {
			st, err := os.Stat(f)
			if err == nil {
				if got := st.Mode().Perm(); got != want {
					t.Errorf("%s: got permissions %v, want %v", filepath.Base(f), got, want)
				}
				break
			}
			if !os.IsNotExist(err) || time.Now().After(deadline) {
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// A queue file the queue creates, and the files beside it, are its
// owner's alone: other local users could otherwise read every message,
// and hold a lock file's lock to stall every writer.
func TestANewQueueIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b := openQueue(t, path)
	if err := <-publishInBackground(b, "m-1"); err != nil {
		t.Fatal(err)
	}
	requireModes(t, path, 0o600)
}

// A queue file created beforehand for a group keeps its permissions, and
// the lock files get the same, whatever the umask: the group's processes
// can take the locks.
func TestLockFilesTakeTheQueueFilesPermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		t.Fatal(err)
	}
	b := openQueue(t, path)
	if err := <-publishInBackground(b, "m-1"); err != nil {
		t.Fatal(err)
	}
	requireModes(t, path, 0o660)
}
