package sqlite_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/sqlite"
)

// The store names the changes file it watches and its lock files after the
// file SQLite opened, which on Unix is the path with every symbolic link
// resolved component by component (a ".." after a linked directory goes
// up from where the link led, not up the path as written). Each case opens
// a queue through another shape of path, writes, and finds the WAL, the
// changes file, the write lock file and the checkpointer's file beside
// that file.
func TestTheStoreNamesItsFilesAfterTheFileSQLiteOpened(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SQLite on Windows does not resolve links: the path is the file")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"data", "real", filepath.Join("real", "sub")} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatalf("symlink: %v", err)
		}
	}
	existing, err := sqlite.Open(t.Context(), filepath.Join(dir, "data", "existing.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := existing.Close(); err != nil {
		t.Fatal(err)
	}
	link(filepath.Join(dir, "data", "existing.db"), "file-link.db")
	link(filepath.Join(dir, "data"), "data-link")
	link(filepath.Join("data", "later.db"), "later-link.db")
	link(filepath.Join(dir, "real", "sub"), "sub-link")
	link(filepath.Join("..", "data", "up.db"), filepath.Join("real", "sub", "up-link.db"))

	tests := []struct {
		name, path, want string
	}{
		{"a plain path", filepath.Join(dir, "data", "plain.db"), filepath.Join(dir, "data", "plain.db")},
		{"a link to the file", filepath.Join(dir, "file-link.db"), filepath.Join(dir, "data", "existing.db")},
		{"a new file in a linked directory", filepath.Join(dir, "data-link", "new.db"), filepath.Join(dir, "data", "new.db")},
		{"a relative link to a file to be created", filepath.Join(dir, "later-link.db"), filepath.Join(dir, "data", "later.db")},
		{"a relative link with .. in a linked directory", filepath.Join(dir, "sub-link", "up-link.db"), filepath.Join(dir, "real", "data", "up.db")},
		// Joined by hand: filepath.Join would clean the ".." away.
		{".. after a linked directory", dir + filepath.FromSlash("/sub-link/../after.db"), filepath.Join(dir, "real", "after.db")},
	}
	if err := os.Mkdir(filepath.Join(dir, "real", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := sqlite.Open(t.Context(), tt.path, sqlite.Config{CheckpointInterval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x"))); err != nil {
				t.Fatal(err)
			}
			file := sqlite.FileOf(b)
			if file != tt.want {
				t.Errorf("file: got %q, want %q", file, tt.want)
			}
			if got := b.Path(); got != tt.path {
				t.Errorf("Path: got %q, want %q (as given)", got, tt.path)
			}
			for _, suffix := range []string{"-wal", "-changes", "-writer", "-checkpointer"} {
				deadline := time.Now().Add(10 * time.Second) // the checkpointer's file comes with its first look
				for {
					_, err := os.Stat(file + suffix)
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("%s beside the file SQLite opened: %v", suffix, err)
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
}

// SQLite names the WAL after the name a file was opened by, so processes
// that open one queue by two hard links write two WALs into one database
// and corrupt it: the store refuses a file with several names.
func TestAQueueFileWithSeveralHardLinksIsRefused(t *testing.T) {
	switch runtime.GOOS { // the platforms of names_other.go
	case "plan9", "js", "wasip1":
		t.Skip("the store cannot count a file's names on this platform")
	}
	dir := t.TempDir()
	path, other := filepath.Join(dir, "queue.db"), filepath.Join(dir, "other.db")
	b, err := sqlite.Open(t.Context(), path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, other); err != nil {
		t.Fatalf("hard link: %v", err)
	}
	for _, p := range []string{path, other} {
		b, err := sqlite.Open(t.Context(), p, sqlite.Config{})
		if err == nil {
			_ = b.Close()
			t.Fatalf("Open %s with two names: got no error, want one", filepath.Base(p))
		}
		if !strings.Contains(err.Error(), "2 names (hard links)") {
			t.Errorf("Open %s: got %v, want an error naming the hard links", filepath.Base(p), err)
		}
	}
}

// An SQLite database with tables but not the queue's (a service's own
// database given as the queue by mistake) is refused, and left as it was:
// not switched to WAL, no queue tables added.
func TestAnotherSQLiteDatabaseIsNotTakenForTheQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=DELETE")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE stock (sku TEXT PRIMARY KEY, on_hand INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []sqlite.Config{{}, {MustExist: true}} {
		b, err := sqlite.Open(t.Context(), path, cfg)
		if err == nil {
			_ = b.Close()
			t.Fatalf("Open (MustExist %v): got no error, want one", cfg.MustExist)
		}
		if !strings.Contains(err.Error(), "not a queue file") || !strings.Contains(err.Error(), "stock") {
			t.Errorf("Open (MustExist %v): got %v, want an error saying it is not a queue file and naming its tables", cfg.MustExist, err)
		}
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	var queueTables int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name LIKE 'queue%'`).Scan(&queueTables); err != nil {
		t.Fatal(err)
	}
	if mode != "delete" || queueTables != 0 {
		t.Errorf("the database after the refused opens: got journal mode %q and %d queue tables, want delete and 0", mode, queueTables)
	}
}

// A queue file deleted under a running process leaves its WAL: a new file
// made beside that WAL would take its frames for its own and be corrupt.
// Open refuses, saying what happened, and creates nothing.
func TestAQueueFileDeletedBesideItsWALIsNotRecreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := sqlite.Open(t.Context(), path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	if err := b.Publisher().Publish("orders", message.NewMessage("m-1", []byte("{}"))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("no WAL beside the open queue: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	again, err := sqlite.Open(t.Context(), path, sqlite.Config{})
	if err == nil {
		_ = again.Close()
		t.Fatal("Open beside the WAL of a deleted queue file: got no error, want one")
	}
	if !strings.Contains(err.Error(), "deleted or moved while in use") {
		t.Errorf("Open: got %v, want an error saying the file was deleted while in use", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("queue file after the refused Open: got %v, want none created", err)
	}
}
