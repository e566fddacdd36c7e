package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A file created by Open uses incremental auto-vacuum (garbage collection
// relies on it) and PageSize, and connecting to an existing file writes
// nothing: with another process holding the write lock, new connections of
// either kind still connect. (Asking for auto_vacuum in every connection string made
// each connect a write transaction, which can fail at once with "database
// is locked" while other processes write.)
func TestConnectingToAnExistingFileWritesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "q.db")
	be, err := Open(ctx, path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	var autoVacuum int
	if err := be.readDB.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&autoVacuum); err != nil {
		t.Fatal(err)
	}
	if autoVacuum != 2 {
		t.Errorf("auto_vacuum of a new queue file: got %d, want 2 (incremental)", autoVacuum)
	}
	var pageSize int
	if err := be.readDB.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if pageSize != PageSize {
		t.Errorf("page_size of a new queue file: got %d, want %d", pageSize, PageSize)
	}

	holder, err := sql.Open("sqlite3", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	tx, err := holder.BeginTx(ctx, nil) // holds the write lock until Rollback
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()

	cfg := Config{BusyTimeout: 100 * time.Millisecond}
	cfg.setDefaults()
	for _, tc := range []struct {
		name string
		role connRole
	}{
		{"reader", connReader},
		{"writer", connWriter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sql.Open("sqlite3", dsn(path, cfg, tc.role))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.PingContext(ctx); err != nil {
				t.Errorf("connect while another connection holds the write lock: %v", err)
			}
		})
	}
}

// A file another process has just created, still empty, is new: the opener
// that finds it so must set it up too (sqlitefile.Prepare), or the first
// commit may come from it (without the size check, six processes opening a new file
// together left auto_vacuum off in 20 of 30 rounds).
func TestOpeningAnEmptyFileMakesItIncremental(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	be, err := Open(context.Background(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	var autoVacuum int
	if err := be.readDB.QueryRow("PRAGMA auto_vacuum").Scan(&autoVacuum); err != nil {
		t.Fatal(err)
	}
	if autoVacuum != 2 {
		t.Errorf("auto_vacuum of a queue file that was empty: got %d, want 2 (incremental)", autoVacuum)
	}
}
