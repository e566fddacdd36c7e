// Package sqlitefile creates the SQLite files orderflow keeps — the shared
// queue file and each service's own database — with the settings SQLite
// lets a file choose only while it is new: its page size and its
// auto-vacuum mode, both fixed once the first table exists, and the page
// size for good once the file is in WAL mode.
//
// mattn/go-sqlite3 has no connection-string parameter for the page size and
// sets the journal mode as the connection opens, before any statement of
// ours could set it; so Prepare gives a new file these settings on a
// connection of its own, before the file is opened for use.
package sqlitefile

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3" // also registers the database/sql driver "sqlite3"
)

// DefaultPageSize is the page size of the services' own databases: 2 KiB,
// half of SQLite's default. Every commit writes each page it changed, whole,
// to the WAL, and a service's commit changes a row of a few hundred bytes
// in each of several b-trees (events, projections and their indexes, inbox,
// outbox): smaller pages write less per commit. Measured end to end
// (docs/benchmarks.md, three alternating rounds): 4–10 % more orders/s, the
// order service's CPU per order 3–8 % lower, p50 at 100 orders/s 16–19 ms
// against 23–26; 1 KiB pages were no better than 2 KiB. The shared queue
// file keeps 4 KiB (queue/sqlite.PageSize): its publishers fill pages with
// batches.
const DefaultPageSize = 2048

// Options are the settings Prepare gives a new file.
type Options struct {
	// PageSize in bytes: a power of two from 512 to 65536. Defaults to
	// DefaultPageSize.
	PageSize int
	// IncrementalVacuum makes the file hand freed pages back to the file
	// system on PRAGMA incremental_vacuum, so it can shrink after a
	// backlog drains (the queue file's garbage collector does that).
	IncrementalVacuum bool
	// BusyTimeout is how long to wait for another process's write lock
	// (several processes may create the queue file at once). Defaults to
	// 10 s.
	BusyTimeout time.Duration
}

func (o *Options) setDefaults() {
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = 10 * time.Second
	}
}

// Validate reports whether the options describe a file SQLite can make.
func (o Options) Validate() error {
	if o.PageSize < 512 || o.PageSize > 65536 || o.PageSize&(o.PageSize-1) != 0 {
		return fmt.Errorf("page size %d: want a power of two from 512 to 65536", o.PageSize)
	}
	if o.BusyTimeout < 0 {
		return fmt.Errorf("busy timeout %s: must not be negative", o.BusyTimeout)
	}
	return nil
}

// NewFileMode is the permissions of a database file Prepare creates:
// its owner's alone. The files hold customer data (orders, addresses,
// payments) and, for a queue, every message; and anyone who can open the
// queue file's lock files can hold their locks and stall every writer.
// SQLite gives a database's -wal and -shm files the database file's
// permissions, and the queue its lock files (openLockFile). To share the
// files with a group, create the (empty) file with the mode wanted
// before the first start: an existing file keeps its own.
const NewFileMode os.FileMode = 0o600

// Prepare gives the file at path, if it is new (missing or empty), the page
// size and auto-vacuum mode of opts and the WAL journal, and reports whether
// it did. A file with content is left as it is, whatever its settings: a
// file created before this package existed keeps its 4 KiB pages and works
// on unchanged. Another process may create the file at the same moment;
// then one of them sets it up and the other finds it done.
//
// A missing file is created with NewFileMode. The caller creates path's
// directory and opens the file afterwards as it always does (WAL in its
// connection string is then a no-op).
func Prepare(ctx context.Context, path string, opts Options) (created bool, err error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return false, fmt.Errorf("prepare sqlite file %q: %w", path, err)
	}
	if fresh, err := isNew(path); err != nil || !fresh {
		return false, err
	}
	// Create the file with NewFileMode before SQLite does with its own
	// default (0644 less the umask); another process creating it at the
	// same moment is fine: an empty file is still new. A file that
	// cannot be created (no such directory, no permission) is left to
	// SQLite, whose error the callers explain (Explain).
	if f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, NewFileMode); err == nil {
		if err := f.Close(); err != nil {
			return false, fmt.Errorf("prepare sqlite file %q: %w", path, err)
		}
	}
	params := url.Values{}
	params.Set("_busy_timeout", fmt.Sprint(opts.BusyTimeout.Milliseconds()))
	params.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite3", DSN(path, params))
	if err != nil {
		return false, fmt.Errorf("prepare sqlite file %q: %w", path, err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	conn, err := db.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("prepare sqlite file %q: %w", path, err)
	}
	defer func() { err = errors.Join(err, conn.Close()) }()

	// page_size and auto_vacuum only record a wish on an empty file; the
	// first write (here: switching to WAL) makes them the file's. On a file
	// another process has just set up, they do nothing.
	var pages int64
	if err := conn.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return false, fmt.Errorf("prepare sqlite file %q: %w", path, err)
	}
	if pages > 0 {
		return false, nil
	}
	stmts := []string{fmt.Sprintf("PRAGMA page_size = %d", opts.PageSize)}
	if opts.IncrementalVacuum {
		stmts = append(stmts, "PRAGMA auto_vacuum = INCREMENTAL")
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return false, fmt.Errorf("prepare sqlite file %q: %s: %w", path, s, err)
		}
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return false, fmt.Errorf("prepare sqlite file %q: set WAL: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return false, fmt.Errorf("prepare sqlite file %q: journal mode is %q after asking for WAL", path, mode)
	}
	return true, nil
}

func isNew(path string) (bool, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("prepare sqlite file: %w", err)
	case st.IsDir():
		return false, fmt.Errorf("prepare sqlite file %q: is a directory", path)
	default:
		return st.Size() == 0, nil
	}
}

// DSN is the mattn/go-sqlite3 connection string of the file at path with
// params (_journal_mode, _busy_timeout, …). A '?' or '#' in the file name
// is escaped, so that it does not start the string's query or fragment,
// and so is a '%', which SQLite would otherwise decode ("a%41.db" would
// open "aA.db"): path names the file as it is.
//
// Unless params choose otherwise, the connections are opened without
// SQLite's per-connection mutex (_mutex=no, SQLITE_OPEN_NOMUTEX):
// database/sql never lets two goroutines use one connection at once, so
// the mutex mattn/go-sqlite3 asks for by default (FULLMUTEX) only adds a
// lock and an unlock to every SQLite call — 1–10 % of the order service's
// CPU per order in alternating runs (docs/benchmarks.md). Code that shares
// one driver connection between goroutines itself must pass _mutex=full.
// Without the mutex, close every *sql.Rows: mattn/go-sqlite3 finalizes a
// statement it finds unreferenced from a garbage-collector finalizer,
// without the connection's lock, which would then race with the
// connection's next use.
func DSN(path string, params url.Values) string {
	name := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	q := url.Values{"_mutex": {"no"}}
	for k, v := range params {
		q[k] = v
	}
	return name + "?" + q.Encode()
}

// OpenDB is sql.Open("sqlite3", dsn) for settings the connection string
// cannot carry: each connection the pool opens runs pragmas ("PRAGMA " is
// prepended; e.g. "wal_autocheckpoint = 10000") before its first use, so a
// connection the pool replaces gets them too. A pragma SQLite refuses
// fails the connection (the first query, or Ping, reports it). Like
// sql.Open it opens nothing yet.
func OpenDB(dsn string, pragmas ...string) *sql.DB {
	drv := &sqlite3.SQLiteDriver{}
	if len(pragmas) > 0 {
		pragmas = slices.Clone(pragmas)
		drv.ConnectHook = func(conn *sqlite3.SQLiteConn) error {
			for _, p := range pragmas {
				if _, err := conn.Exec("PRAGMA "+p, nil); err != nil {
					return fmt.Errorf("PRAGMA %s: %w", p, err)
				}
			}
			return nil
		}
	}
	return sql.OpenDB(connector{dsn: dsn, drv: drv})
}

// connector opens connections of one DSN through a driver of its own (a
// ConnectHook is a driver's), without registering a driver name.
type connector struct {
	dsn string
	drv *sqlite3.SQLiteDriver
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.drv }
