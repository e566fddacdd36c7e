package sqlite

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The reading pool opens no connection to a file moved over the queue's,
// nor to a new one where the queue's was removed: the process stays on
// the file it opened.
func TestNoNewConnectionToAReplacedQueueFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.db")
	b, err := Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	b.readDB.SetMaxIdleConns(0) // every Conn below opens a connection
	newConn := func() error {
		c, err := b.readDB.Conn(t.Context())
		if err == nil {
			_ = c.Close()
		}
		return err
	}
	if err := newConn(); err != nil {
		t.Fatalf("a connection to the opened file: %v", err)
	}

	other := filepath.Join(dir, "other.db")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if err := newConn(); !errors.Is(err, errFileReplaced) {
		t.Errorf("a connection after the file was replaced: got %v, want errFileReplaced", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := newConn(); !errors.Is(err, errFileReplaced) {
		t.Errorf("a connection after the file was removed: got %v, want errFileReplaced", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the removed queue file: got %v, want it still absent (no empty queue created)", err)
	}
}
