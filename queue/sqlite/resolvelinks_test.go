package sqlite

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolveLinksNamesTheFileSQLiteOpens(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mustMkdir := func(p string) {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustLink := func(target, link string) {
		if err := os.Symlink(target, link); err != nil {
			t.Fatalf("symlink: %v", err)
		}
	}
	mustMkdir(filepath.Join(dir, "data"))
	if err := os.WriteFile(filepath.Join(dir, "data", "queue.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mustLink(filepath.Join(dir, "data", "queue.db"), filepath.Join(dir, "file-link.db"))
	mustLink(filepath.Join(dir, "data"), filepath.Join(dir, "dir-link"))
	mustLink(filepath.Join(dir, "nowhere", "queue.db"), filepath.Join(dir, "dangling.db"))
	mustLink(filepath.Join("data", "later.db"), filepath.Join(dir, "later-link.db"))
	mustLink("loop-b.db", filepath.Join(dir, "loop-a.db"))
	mustLink("loop-a.db", filepath.Join(dir, "loop-b.db"))

	tests := []struct {
		name, path, want string
	}{
		{"a plain file", filepath.Join(dir, "data", "queue.db"), filepath.Join(dir, "data", "queue.db")},
		{"a link to the file", filepath.Join(dir, "file-link.db"), filepath.Join(dir, "data", "queue.db")},
		{"a file through a linked directory", filepath.Join(dir, "dir-link", "queue.db"), filepath.Join(dir, "data", "queue.db")},
		{"a new file in a linked directory", filepath.Join(dir, "dir-link", "new.db"), filepath.Join(dir, "data", "new.db")},
		{"a new file in a missing directory", filepath.Join(dir, "missing", "new.db"), filepath.Join(dir, "missing", "new.db")},
		{"a relative link to a file to be created", filepath.Join(dir, "later-link.db"), filepath.Join(dir, "data", "later.db")},
		{"a link into a missing directory", filepath.Join(dir, "dangling.db"), filepath.Join(dir, "nowhere", "queue.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveLinks(tt.path)
			if err != nil {
				t.Fatalf("got error %v, want %q", err, tt.want)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if got, err := resolveLinks(filepath.Join(dir, "loop-a.db")); err == nil {
		t.Errorf("links in a loop: got %q, want an error", got)
	}
}
