package adapters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/services/order/internal/app"
)

// storageErr marks the failures of a database that cannot be used now,
// however deep in the chain, and nothing else.
func TestStorageErrClassifies(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool // matches app.ErrStorageUnavailable
	}{
		{"disk full", fmt.Errorf("save order o-1: %w", sqlite3.Error{Code: sqlite3.ErrFull}), true},
		{"I/O error", fmt.Errorf("commit: %w", sqlite3.Error{Code: sqlite3.ErrIoErr, ExtendedCode: sqlite3.ErrIoErrFsync}), true},
		{"busy", sqlite3.Error{Code: sqlite3.ErrBusy}, true},
		{"locked within the connection", sqlite3.Error{Code: sqlite3.ErrLocked}, false},
		{"cannot open", fmt.Errorf("get connection: %w", sqlite3.Error{Code: sqlite3.ErrCantOpen, SystemErrno: syscall.EMFILE}), true},
		{"read-only file system", sqlite3.Error{Code: sqlite3.ErrReadonly}, true},
		{"too many open files", fmt.Errorf("open: %w", &os.PathError{Op: "open", Path: "/data/order.db", Err: syscall.EMFILE}), true},
		{"no space", fmt.Errorf("write: %w", syscall.ENOSPC), true},
		{"constraint", sqlite3.Error{Code: sqlite3.ErrConstraint}, false},
		{"corrupt", sqlite3.Error{Code: sqlite3.ErrCorrupt}, true},
		{"not found", fmt.Errorf("%w: o-1", app.ErrOrderNotFound), false},
		{"no rows", sql.ErrNoRows, false},
		{"other", errors.New("boom"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := storageErr(tc.err)
			if is := errors.Is(got, app.ErrStorageUnavailable); is != tc.want {
				t.Errorf("errors.Is(storageErr(%v), ErrStorageUnavailable): got %v, want %v", tc.err, is, tc.want)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("storageErr(%v) = %v: got the original error lost, want it in the chain", tc.err, got)
			}
			if again := storageErr(got); again != got {
				t.Errorf("storageErr twice: got %v, want %v unchanged", again, got)
			}
		})
	}
	if got := storageErr(nil); got != nil {
		t.Errorf("storageErr(nil): got %v, want nil", got)
	}
}

// WriteHealth fails while the order database cannot take a transaction
// (here: full, from a page limit on the writer), and passes again once
// one commits.
func TestWriteHealthFollowsTheTransactions(t *testing.T) {
	ctx := context.Background()
	db, err := OpenDB(ctx, filepath.Join(t.TempDir(), "order.db"), DBConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ob, err := outbox.New(ctx, db.Writer, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := inbox.New(ctx, db.Writer, inbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStore(db, ob, ib, nil)
	if err != nil {
		t.Fatal(err)
	}
	write := func() error {
		return s.InTx(ctx, func(ctx context.Context, tx app.Tx) error {
			return tx.SaveIdempotencyKey(ctx, app.IdempotencyRecord{
				Key: strings.Repeat("k", 200) + time.Now().String(), RequestHash: strings.Repeat("h", 2000), OrderID: "o-1", CreatedAt: time.Now(),
			})
		})
	}
	if err := write(); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteHealth(); err != nil {
		t.Fatalf("after a commit: got %v, want nil", err)
	}
	var pages int
	if err := db.Writer.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Writer.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	var werr error
	for range 1000 {
		if werr = write(); werr != nil {
			break
		}
	}
	if !errors.Is(werr, app.ErrStorageUnavailable) {
		t.Fatalf("write to a full database: got %v, want ErrStorageUnavailable", werr)
	}
	if err := s.WriteHealth(); err == nil || !strings.Contains(err.Error(), "full") {
		t.Errorf("while full: got %v, want an error saying the database is full", err)
	}
	if _, err := db.Writer.Exec(`PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if err := write(); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteHealth(); err != nil {
		t.Errorf("after a commit that followed the failure: got %v, want nil", err)
	}
}
