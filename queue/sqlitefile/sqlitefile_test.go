package sqlitefile_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/queue/sqlitefile"
)

// header reads what SQLite's file header says of a file: its page size
// (bytes 16–17) and whether it is in WAL mode (bytes 18–19 are 2).
func header(t *testing.T, path string) (pageSize int, wal bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 100 || string(b[:16]) != "SQLite format 3\x00" {
		t.Fatalf("%s is not an SQLite file (%d bytes)", path, len(b))
	}
	pageSize = int(binary.BigEndian.Uint16(b[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	return pageSize, b[18] == 2 && b[19] == 2
}

func pragma(t *testing.T, path, name string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", sqlitefile.DSN(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPrepareSetsUpANewFile(t *testing.T) {
	for _, tc := range []struct {
		name           string
		opts           sqlitefile.Options
		wantPageSize   int
		wantAutoVacuum int // 0 none, 2 incremental
	}{
		{"defaults", sqlitefile.Options{}, sqlitefile.DefaultPageSize, 0},
		{"incremental vacuum", sqlitefile.Options{IncrementalVacuum: true}, sqlitefile.DefaultPageSize, 2},
		{"4 KiB pages", sqlitefile.Options{PageSize: 4096}, 4096, 0},
		{"64 KiB pages", sqlitefile.Options{PageSize: 65536}, 65536, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "new.db")
			created, err := sqlitefile.Prepare(context.Background(), path, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !created {
				t.Error("created: got false for a missing file, want true")
			}
			pageSize, wal := header(t, path)
			if pageSize != tc.wantPageSize {
				t.Errorf("page size in the file header: got %d, want %d", pageSize, tc.wantPageSize)
			}
			if !wal {
				t.Error("file header: not in WAL mode")
			}
			if got := pragma(t, path, "auto_vacuum"); got != tc.wantAutoVacuum {
				t.Errorf("auto_vacuum: got %d, want %d", got, tc.wantAutoVacuum)
			}
		})
	}
}

// A file another process created a moment ago and has not written yet is
// empty; it is new too.
func TestPrepareSetsUpAnEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	created, err := sqlitefile.Prepare(context.Background(), path, sqlitefile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pageSize, _ := header(t, path); !created || pageSize != sqlitefile.DefaultPageSize {
		t.Errorf("empty file: got created=%v page size %d, want true and %d", created, pageSize, sqlitefile.DefaultPageSize)
	}
}

// A file with content keeps its settings and its data: files made before
// sqlitefile existed have 4 KiB pages and no WAL in their header until
// opened, and must work on unchanged.
func TestPrepareLeavesAnExistingFileAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite3", sqlitefile.DSN(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"PRAGMA page_size = 4096", "CREATE TABLE kept (v TEXT)", "INSERT INTO kept VALUES ('here')"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	created, err := sqlitefile.Prepare(context.Background(), path, sqlitefile.Options{IncrementalVacuum: true})
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("created: got true for a file with a table, want false")
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("Prepare changed a file that had content")
	}

	// Preparing a file it set up itself is a no-op too.
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	for i, want := range []bool{true, false} {
		created, err := sqlitefile.Prepare(context.Background(), fresh, sqlitefile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if created != want {
			t.Errorf("Prepare #%d of one file: got created=%v, want %v", i+1, created, want)
		}
	}
}

func TestPrepareRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		path    string
		opts    sqlitefile.Options
		wantErr string
	}{
		{"page size not a power of two", filepath.Join(dir, "a.db"), sqlitefile.Options{PageSize: 3000}, "page size 3000: want a power of two from 512 to 65536"},
		{"page size too small", filepath.Join(dir, "b.db"), sqlitefile.Options{PageSize: 256}, "page size 256"},
		{"page size too large", filepath.Join(dir, "c.db"), sqlitefile.Options{PageSize: 131072}, "page size 131072"},
		{"negative busy timeout", filepath.Join(dir, "d.db"), sqlitefile.Options{BusyTimeout: -1}, "busy timeout -1ns: must not be negative"},
		{"a directory", dir, sqlitefile.Options{}, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sqlitefile.Prepare(context.Background(), tc.path, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
			if tc.path != dir {
				if _, err := os.Stat(tc.path); !os.IsNotExist(err) {
					t.Errorf("refused options left a file behind (stat: %v)", err)
				}
			}
		})
	}
}

func TestDSN(t *testing.T) {
	for _, tc := range []struct {
		path   string
		params url.Values
		want   string
	}{
		{"/data/queue.db", nil, "file:/data/queue.db?_mutex=no"},
		{"/data/queue.db", url.Values{"_txlock": {"immediate"}}, "file:/data/queue.db?_mutex=no&_txlock=immediate"},
		{"/data/queue.db", url.Values{"_mutex": {"full"}}, "file:/data/queue.db?_mutex=full"},
		{"/data/what?#.db", url.Values{"_busy_timeout": {"10"}}, "file:/data/what%3f%23.db?_busy_timeout=10&_mutex=no"},
		{"/data/50%41 %zz.db", nil, "file:/data/50%2541 %25zz.db?_mutex=no"},
	} {
		if got := sqlitefile.DSN(tc.path, tc.params); got != tc.want {
			t.Errorf("DSN(%q, %v): got %q, want %q", tc.path, tc.params, got, tc.want)
		}
	}
}

// A file name with '?', '#' or '%' names that file, not a query, a
// fragment or an escaped character.
func TestPrepareFileNameWithQueryCharacters(t *testing.T) {
	for _, name := range []string{"odd?name#1.db", "50%41.db", "100%.db"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			if _, err := sqlitefile.Prepare(context.Background(), path, sqlitefile.Options{}); err != nil {
				t.Fatal(err)
			}
			if pageSize, _ := header(t, path); pageSize != sqlitefile.DefaultPageSize {
				t.Errorf("page size: got %d, want %d", pageSize, sqlitefile.DefaultPageSize)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() != name && !strings.HasPrefix(e.Name(), name+"-") {
					t.Errorf("file %q beside %q: SQLite opened another name", e.Name(), name)
				}
			}
		})
	}
}

// OpenDB's pragmas hold on every connection of the pool, not only the
// first; one SQLite refuses fails the connection with its text.
func TestOpenDBRunsPragmasOnEachConnection(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	db := sqlitefile.OpenDB(sqlitefile.DSN(path, nil), "wal_autocheckpoint = 1234", "cache_size = -4000")
	defer db.Close()
	var conns []*sql.Conn
	for range 2 { // held at once: two distinct connections
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	for i, conn := range conns {
		for _, tc := range []struct {
			pragma string
			want   int
		}{{"wal_autocheckpoint", 1234}, {"cache_size", -4000}} {
			var got int
			if err := conn.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("connection %d: PRAGMA %s: got %d, want %d", i, tc.pragma, got, tc.want)
			}
		}
	}

	bad := sqlitefile.OpenDB(sqlitefile.DSN(path, nil), "wal_autocheckpoint = = 1")
	defer bad.Close()
	err := bad.PingContext(ctx)
	if err == nil || !strings.Contains(err.Error(), "PRAGMA wal_autocheckpoint = = 1") {
		t.Errorf("refused pragma: got %v, want an error naming it", err)
	}
}

// Explain names what it can see of a file SQLite cannot open, and leaves
// other errors, and errors of files it finds nothing wrong with, alone.
func TestExplain(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	missing := filepath.Join(dir, "no", "such", "dir", "a.db")
	db := sqlitefile.OpenDB(sqlitefile.DSN(missing, nil))
	defer db.Close()
	cantOpen := db.PingContext(ctx)
	if cantOpen == nil {
		t.Fatal("opening a file in a missing directory: got no error")
	}
	got := sqlitefile.Explain(missing, cantOpen)
	// SQLite's errno ("no such file or directory", also for a directory
	// the process may not write) is left out: the explanation says it.
	want := "directory " + filepath.Dir(missing) + " does not exist: unable to open database file"
	if got.Error() != want {
		t.Errorf("missing directory: got %q, want %q", got, want)
	}
	if !errors.Is(got, cantOpen) {
		t.Errorf("explained error does not wrap SQLite's")
	}

	path := filepath.Join(dir, "ro.db")
	rw := sqlitefile.OpenDB(sqlitefile.DSN(path, nil))
	defer rw.Close()
	if _, err := rw.ExecContext(ctx, `CREATE TABLE t (x)`); err != nil {
		t.Fatal(err)
	}
	ro := sqlitefile.OpenDB(sqlitefile.DSN(path, url.Values{"mode": {"ro"}}))
	defer ro.Close()
	_, readOnly := ro.ExecContext(ctx, `INSERT INTO t VALUES (1)`)
	if readOnly == nil {
		t.Fatal("writing through a read-only connection: got no error")
	}
	if got := sqlitefile.Explain(path, readOnly); got != readOnly {
		t.Errorf("writable file: got %q, want the error unchanged", got)
	}

	other := errors.New("boom")
	if got := sqlitefile.Explain(missing, other); got != other {
		t.Errorf("not an SQLite error: got %q, want it unchanged", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".orderflow-write-probe") {
			t.Errorf("probe file left behind: %s", e.Name())
		}
	}
}
