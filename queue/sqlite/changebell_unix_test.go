//go:build unix

package sqlite_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/orderflow/orderflow/queue/sqlite"
)

// Every process on the queue must be able to ring the changes file, so the
// first one creates it with the queue file's permissions, not narrowed by
// its umask (services of several users sharing a group-writable queue).
func TestTheChangesFileHasTheQueueFilesPermissions(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "queue.db")
	if err := os.WriteFile(path, nil, 0o660); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o664); err != nil { // group-writable, past the umask
		t.Fatal(err)
	}
	b, err := sqlite.Open(t.Context(), path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, err := os.Stat(path + "-changes")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Mode().Perm(), os.FileMode(0o664); got != want {
		t.Errorf("changes file permissions: got %v, want %v (the queue file's)", got, want)
	}
}
