package sqlite_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/sqlite"
)

// The store names the WAL it watches and its lock files after the file
// SQLite opened, which on Unix is the path with every symbolic link
// resolved component by component (a ".." after a linked directory goes
// up from where the link led, not up the path as written). Each case opens
// a queue through another shape of path, writes, and finds the WAL, the
// write lock file and the checkpointer's file beside that file.
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
			for _, suffix := range []string{"-wal", "-writer", "-checkpointer"} {
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
