// Package sqlite is a Watermill Pub/Sub on one SQLite file shared by several
// OS processes, built on leases (visibility timeouts) rather than held
// transactions.
//
// A claim is one short write (a SELECT of the oldest visible deliveries and
// an UPDATE of their range, in one transaction) that makes a batch of
// deliveries invisible for the lease and bumps their attempt counters; the
// handler runs with no transaction open; an ack deletes the delivery; a
// nack makes it visible again (after the delay the retry middleware asked
// for). A consumer that dies simply stops extending its leases, and its
// messages come back.
// Every ack, nack and lease extension names the lease it holds (a lease id
// bumped on every claim), so an ack that arrives after the lease moved on is
// reported as lost instead of deleting another consumer's delivery.
//
// Each process writes through one connection and one writer goroutine that
// commits the publishes, claims and acks queued by all of the process's
// publishers and subscribers in one transaction (group commit): SQLite hands
// its write lock between processes once per commit, so fewer, larger commits
// are what make it fast. An idle process takes no write lock: it watches
// PRAGMA data_version and probes with reads before it claims.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/fsnotify/fsnotify"
	"github.com/mattn/go-sqlite3"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/internal/sologate"
	"github.com/orderflow/orderflow/queue/retry"
	"github.com/orderflow/orderflow/queue/sqlitefile"
	"github.com/orderflow/orderflow/queue/writehealth"
)

const schema = `
CREATE TABLE IF NOT EXISTS queue_messages (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	topic      TEXT    NOT NULL,
	uuid       TEXT    NOT NULL,
	payload    BLOB,
	metadata   TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_messages_topic ON queue_messages (topic, id);

CREATE TABLE IF NOT EXISTS queue_topics (
	topic      TEXT    NOT NULL PRIMARY KEY,
	created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS queue_subscriptions (
	topic          TEXT    NOT NULL,
	consumer_group TEXT    NOT NULL,
	created_at     INTEGER NOT NULL,
	PRIMARY KEY (topic, consumer_group)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS queue_deliveries (
	topic           TEXT    NOT NULL,
	consumer_group  TEXT    NOT NULL,
	message_id      INTEGER NOT NULL,
	visible_at      INTEGER NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	lease_id        INTEGER NOT NULL DEFAULT 0,
	in_flight       INTEGER NOT NULL DEFAULT 0,
	solo_runs       INTEGER NOT NULL DEFAULT 0,
	first_failed_at INTEGER,
	last_failed_at  INTEGER,
	last_error      TEXT,
	PRIMARY KEY (topic, consumer_group, message_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS queue_dead_letters (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	message_uuid    TEXT    NOT NULL,
	topic           TEXT    NOT NULL,
	consumer_group  TEXT    NOT NULL,
	payload         BLOB,
	metadata        TEXT    NOT NULL,
	attempts        INTEGER NOT NULL,
	last_error      TEXT    NOT NULL,
	first_failed_at INTEGER NOT NULL,
	last_failed_at  INTEGER NOT NULL,
	dead_at         INTEGER NOT NULL,
	UNIQUE (consumer_group, message_uuid)
);
`

// Backend is a SQLite queue store. It implements backend.Backend.
type Backend struct {
	path string // as given to Open
	// file is the file SQLite opened for path (see databaseFile), which
	// it keeps the WAL and its shared memory beside: the watcher, the WAL
	// limit and the lock files name files beside it.
	file   string
	cfg    Config
	logger watermill.LoggerAdapter

	writeDB *sql.DB // one connection, used only by the writer goroutine
	readDB  *sql.DB // read-only connections for probes, payloads and stats
	// readStmts are the statements subscribers run on every wake-up and
	// claim (probes, loading claimed messages), prepared once.
	readStmts *stmtCache[*sql.DB]

	writes chan writeRequest
	wake   *broadcaster
	// bell tells the other processes of commits that made deliveries
	// visible (see changesSuffix). Only the writer goroutine uses it.
	bell *changeBell

	publisher *Publisher

	// solo lets a message whose previous delivery was abandoned run
	// alone among the handlers of this backend's subscribers.
	solo *sologate.Gate

	// stop ends the background goroutines; done waits for them.
	stop    context.CancelFunc
	loops   sync.WaitGroup
	writerQ sync.WaitGroup // write requests accepted but not yet answered
	// orphans are the writes whose callers stopped waiting for them
	// (submitUntil), each with a goroutine that takes their answer.
	orphans sync.WaitGroup
	// abort is closed when a bounded close (Shutdown) runs out of time:
	// from then on the writer waits for no lock, and writes it cannot
	// commit at once fail with errGaveUp.
	abort     chan struct{}
	abortOnce sync.Once
	// givenUp counts the writes nobody waited for (acks, nacks,
	// releases) that failed with errGaveUp.
	givenUp atomic.Int64
	// watching is set once the change watcher watches the changes file
	// (tests wait for it).
	watching atomic.Bool

	mu           sync.Mutex
	closed       bool // no new publishes or subscribers
	writesClosed bool // no new write requests at all
	subs         map[*Subscriber]struct{}
	knownTopics  map[string]bool // topics registered in queue_topics by this process

	acked     atomic.Int64 // acks committed since the last garbage collection
	freePages atomic.Bool  // the last vacuum left free pages to hand back

	writeCounts writeCounters // WriteStats

	// health records the writer's failures and commits (WriteHealth).
	health writehealth.Record
	// opened is the queue file as stat'ed at Open; replaced is set while
	// the path names another file (checkFile).
	opened   os.FileInfo
	replaced atomic.Pointer[error]

	// txLeftOpen is set when a ROLLBACK of the writer's failed
	// transaction failed too, so the connection may still hold SQLite's
	// write lock; the next transaction rolls back before it waits for the
	// lock file. Only the writer goroutine uses it.
	txLeftOpen bool
}

var _ backend.Backend = (*Backend)(nil)

// Open opens (creating if needed) the queue file at path and starts the
// process's writer, change watcher, garbage collector and checkpointer.
// Several processes may open the same file at once.
func Open(ctx context.Context, path string, cfg Config) (*Backend, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sqlite queue config: %w", err)
	}
	if path == "" {
		return nil, errors.New("open sqlite queue: empty path")
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return nil, fmt.Errorf("open sqlite queue %q: is a directory", path)
	case errors.Is(err, os.ErrNotExist) && cfg.MustExist:
		return nil, fmt.Errorf("open sqlite queue %q: no such file (is the queue URL right?)", path)
	case errors.Is(err, os.ErrNotExist):
		// A WAL without its database: the file was deleted (or moved)
		// under processes that may still run on it. A new file beside
		// that WAL would take its frames for its own and be corrupt for
		// every process ("database disk image is malformed").
		if _, werr := os.Lstat(path + "-wal"); werr == nil {
			return nil, fmt.Errorf("open sqlite queue %q: no such file, but %s-wal is there: the queue file was deleted or moved while in use; stop every process on it, then restore the file, or remove the -wal and -shm files to start an empty queue", path, filepath.Base(path))
		}
	case err == nil:
		if err := checkQueueFile(ctx, path, st); err != nil {
			return nil, fmt.Errorf("open sqlite queue %q: %w", path, err)
		}
	}
	// A new file gets its page size and incremental auto-vacuum before
	// anything else (sqlitefile.Prepare); several processes may create it
	// at once, and one that finds it busy being set up retries.
	err = retryWhileBusy(ctx.Done(), cfg.BusyTimeout, func() (bool, error) {
		_, err := sqlitefile.Prepare(ctx, path, sqlitefile.Options{
			PageSize:          PageSize,
			IncrementalVacuum: true,
			BusyTimeout:       cfg.BusyTimeout,
		})
		return isBusy(err), err
	})
	if err != nil {
		return nil, fmt.Errorf("open sqlite queue %q: %w", path, explainFile(path, err))
	}

	writeDB, err := sql.Open("sqlite3", dsn(path, cfg, connWriter))
	if err != nil {
		return nil, fmt.Errorf("open sqlite queue %q: %w", path, err)
	}
	writeDB.SetMaxOpenConns(1)
	writeDB.SetMaxIdleConns(1)
	writeDB.SetConnMaxLifetime(0)
	writeDB.SetConnMaxIdleTime(0)

	if err := initSchema(ctx, writeDB, cfg); err != nil {
		_ = writeDB.Close()
		return nil, fmt.Errorf("open sqlite queue %q: %w", path, sqlitefile.Explain(path, err))
	}
	file, err := databaseFile(ctx, writeDB)
	if err != nil {
		_ = writeDB.Close()
		return nil, fmt.Errorf("open sqlite queue %q: %w", path, err)
	}

	opened, err := os.Stat(file)
	if err != nil {
		_ = writeDB.Close()
		return nil, fmt.Errorf("open sqlite queue %q: %w", path, err)
	}

	// The reading pool opens connections as they are needed, so only
	// to the file opened (sameFileConnector). The writer's one
	// connection, opened above, lives as long as the backend.
	readDB := sql.OpenDB(sameFileConnector{dsn: dsn(path, cfg, connReader), path: file, opened: opened, drv: &sqlite3.SQLiteDriver{}})
	// Three for probes, payload loads and stats, one pinned by the change
	// watcher and one by the checkpoint loop while this process is the
	// file's checkpointer.
	readDB.SetMaxOpenConns(5)
	readDB.SetMaxIdleConns(5)
	readDB.SetConnMaxIdleTime(0)
	readDB.SetConnMaxLifetime(0)

	loopCtx, stop := context.WithCancel(context.Background())
	b := &Backend{
		path:    path,
		file:    file,
		opened:  opened,
		cfg:     cfg,
		logger:  cfg.Logger.With(watermill.LogFields{"queue": "sqlite", "path": path}),
		writeDB: writeDB,
		readDB:  readDB,
		writes:  make(chan writeRequest, 4096),
		wake:    newBroadcaster(),
		solo:    sologate.New(cfg.aloneWait),
		stop:    stop,
		abort:   make(chan struct{}),
		subs:    map[*Subscriber]struct{}{},

		knownTopics: map[string]bool{},
	}
	b.readStmts = newStmtCache(readDB)
	// Created before the change watcher starts, which watches it.
	b.bell = openChangeBell(file+changesSuffix, opened, b.logger)
	watch, err := readDB.Conn(ctx)
	if err != nil {
		stop()
		b.bell.close()
		_ = readDB.Close()
		_ = writeDB.Close()
		return nil, fmt.Errorf("open sqlite queue %q: change watcher connection: %w", path, err)
	}
	b.publisher = &Publisher{b: b}
	b.loops.Add(4)
	go b.writer(loopCtx)
	go b.watchChanges(loopCtx, watch)
	go b.collectGarbage(loopCtx)
	go b.checkpoint(loopCtx)
	return b, nil
}

// PageSize is the page size of a new queue file: SQLite's default, 4 KiB,
// not sqlitefile.DefaultPageSize. Publishers write up to a few hundred
// messages per commit here, filling whole pages, and 2 KiB pages measured
// 7 % fewer batched messages/s in queue/bench (17,150–17,764 against
// 18,303–19,176 msg/s, alternating) and no difference end to end
// (docs/benchmarks.md).
const PageSize = 4096

// connRole is what a connection string is for.
type connRole int

const (
	connReader connRole = iota // read-only: probes, payloads, stats
	connWriter                 // the writer
)

// dsn builds the mattn/go-sqlite3 connection string. _txlock=immediate makes
// every write transaction take the write lock at BEGIN, so two processes
// never deadlock upgrading read locks; busy_timeout makes them wait for it.
//
// The file's page size and incremental auto-vacuum (which lets garbage
// collection hand freed pages back to the file system, so the file shrinks
// after a backlog drains) can only be chosen while it is new; Open has
// sqlitefile.Prepare choose them before the first connection here. (If a
// process dies in the very first commit of a new file, the next opener
// finds a non-empty file with a hot journal and leaves it as it is: the
// queue works on, only the file does not shrink.)
func dsn(path string, cfg Config, role connRole) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", fmt.Sprint(cfg.BusyTimeout.Milliseconds()))
	q.Set("_synchronous", string(cfg.Synchronous))
	q.Set("_foreign_keys", "0")
	if role == connReader {
		q.Set("_query_only", "1")
	} else {
		q.Set("_txlock", "immediate")
	}
	return sqlitefile.DSN(path, q)
}

func initSchema(ctx context.Context, db *sql.DB, cfg Config) error {
	// Connecting runs the DSN's PRAGMAs. When several processes open a
	// new file at once, SQLite can answer one of them "database is locked"
	// at once, without waiting in the busy handler (a connection that
	// cannot wait without risking a deadlock gets SQLITE_BUSY straight
	// away); such a connect is retried.
	err := retryWhileBusy(ctx.Done(), cfg.BusyTimeout, func() (bool, error) {
		err := db.PingContext(ctx)
		return isBusy(err), err
	})
	if err != nil {
		return fmt.Errorf("connect: %w", explain(err))
	}
	// Prove the DSN took effect: mattn ignores misspelled parameters.
	var journal string
	var busy int64
	var sync int
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
		return fmt.Errorf("read journal_mode: %w", explain(err))
	}
	if err := db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
		return fmt.Errorf("read busy_timeout: %w", explain(err))
	}
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("read synchronous: %w", explain(err))
	}
	wantSync := map[Synchronous]int{SynchronousNormal: 1, SynchronousFull: 2}[cfg.Synchronous]
	if !strings.EqualFold(journal, "wal") || busy != cfg.BusyTimeout.Milliseconds() || sync != wantSync {
		return fmt.Errorf("connection settings did not take effect: journal_mode=%s busy_timeout=%d synchronous=%d", journal, busy, sync)
	}
	if _, err := db.ExecContext(ctx, "PRAGMA journal_size_limit = "+fmt.Sprint(cfg.WALLimit)); err != nil {
		return fmt.Errorf("set journal_size_limit: %w", explain(err))
	}
	tx, err := beginSchema(ctx, db, cfg.BusyTimeout)
	if err != nil {
		return fmt.Errorf("create schema: %w", explain(err))
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema: %w", explain(err))
	}
	if err := addMissingColumns(ctx, tx); err != nil {
		return fmt.Errorf("create schema: %w", explain(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create schema: %w", explain(err))
	}
	return nil
}

// beginSchema begins the schema's write transaction on db's one
// connection, waiting up to busyTimeout for another process's write lock,
// or until ctx ends: SQLite's own busy handler would wait out its timeout
// whatever ctx says, so a service told to stop while another process
// holds the lock stopped only when the wait failed. The connection keeps
// busy_timeout 0 (the writer runs with it, see lock).
func beginSchema(ctx context.Context, db *sql.DB, busyTimeout time.Duration) (*sql.Tx, error) {
	if _, err := db.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		return nil, err
	}
	var tx *sql.Tx
	err := retryWhileBusy(ctx.Done(), busyTimeout, func() (bool, error) {
		var err error
		tx, err = db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
		return isBusy(err), err
	})
	if err == nil {
		return tx, nil
	}
	if cerr := ctx.Err(); cerr != nil && isBusy(err) {
		err = fmt.Errorf("%w (waiting for another process's write lock: %w)", cerr, err)
	}
	return nil, err
}

// addedColumns are the columns added to the schema's tables since the
// first release, which files made before have not: table, column and its
// definition.
var addedColumns = [][3]string{
	{"queue_deliveries", "solo_runs", "INTEGER NOT NULL DEFAULT 0"},
}

// addMissingColumns adds addedColumns to an older file. The transaction is
// immediate (it holds the write lock), so two processes opening one old
// file cannot both add a column.
func addMissingColumns(ctx context.Context, tx *sql.Tx) error {
	for _, c := range addedColumns {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, c[0], c[1]).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if _, err := tx.ExecContext(ctx, `ALTER TABLE `+c[0]+` ADD COLUMN `+c[1]+` `+c[2]); err != nil {
				return err
			}
		}
	}
	return nil
}

// explainFile is explain with what sqlitefile.Explain sees of the file
// at path: why it cannot be written, where that can be seen.
func explainFile(path string, err error) error {
	if explained := sqlitefile.Explain(path, err); explained != err {
		return explained
	}
	return explain(err)
}

// explain turns SQLite's terse errors about unusable files into ones that say
// what to check.
func explain(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrNotADB:
			return fmt.Errorf("not a SQLite database (is the path right?): %w", err)
		case sqlite3.ErrCantOpen:
			return fmt.Errorf("cannot open the file (does its directory exist and is it writable?): %w", err)
		case sqlite3.ErrReadonly, sqlite3.ErrPerm:
			return fmt.Errorf("cannot write the file (may this process write it, its -wal and -shm files and its directory?): %w", err)
		}
	}
	return err
}

// Name reports "sqlite".
func (b *Backend) Name() string { return "sqlite" }

// Path is the queue file, as given to Open.
func (b *Backend) Path() string { return b.path }

// checkQueueFile refuses an existing file that cannot safely be the queue:
// one with several names (hard links; a single file bind-mounted into a
// container is the same case, but cannot be seen from here), because
// SQLite names the WAL after the name it was opened by, so processes that
// use different names each write a WAL of their own into one database and
// corrupt it; and an SQLite database with tables but not the queue's (a
// service's own database, say), which opening would change: switched to
// WAL, the queue's tables added. It reads without writing; a file SQLite
// cannot read is left for opening to report.
func checkQueueFile(ctx context.Context, path string, st os.FileInfo) error {
	if err := checkFileNames(path, st); err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil
	}
	db, err := sql.Open("sqlite3", sqlitefile.DSN(path, url.Values{"mode": {"ro"}}))
	if err != nil {
		return nil
	}
	defer func() { _ = db.Close() }()
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return nil
	}
	defer func() { _ = rows.Close() }()
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil
		}
		if name == "queue_messages" {
			return nil
		}
		tables = append(tables, name)
	}
	if rows.Err() != nil || len(tables) == 0 {
		return nil
	}
	const shown = 5
	more := ""
	if len(tables) > shown {
		more = fmt.Sprintf(" and %d more", len(tables)-shown)
		tables = tables[:shown]
	}
	return fmt.Errorf("not a queue file: an SQLite database without the queue's tables (it holds %s%s); is the queue URL right?", strings.Join(tables, ", "), more)
}

// manyNames is the error format (with the count) for a queue file that has
// several names.
const manyNames = "the file has %d names (hard links): SQLite keeps the WAL beside the name it was opened by, so processes using different names would corrupt it; remove the other names"

// databaseFile asks SQLite for the name of the file it opened, the name it
// gives the WAL and shared-memory files after: absolute, with symbolic
// links resolved where SQLite resolves them (on Unix; not on Windows) and
// the path decoded as SQLite decoded it. The store names its own files
// beside the queue (the watched changes file, the lock files) after it,
// and the WAL it checks the size of, so that a queue opened through a
// link, or by another spelling of the path, is watched and locked where
// every other process watches and locks it.
func databaseFile(ctx context.Context, db *sql.DB) (string, error) {
	var file string
	if err := db.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		return "", fmt.Errorf("read the database file's name: %w", explain(err))
	}
	if file == "" {
		return "", errors.New("the queue is not a file")
	}
	return file, nil
}

// Publisher returns the store's publisher; it stays usable until the
// Backend is closed (closing it is a no-op).
func (b *Backend) Publisher() message.Publisher { return b.publisher }

// Close stops the subscribers, lets the writer commit what was queued, and
// closes the file. It is safe to call more than once. The writes still
// queued may each wait for another process's write lock, up to
// BusyTimeout (see Shutdown for a bounded close).
func (b *Backend) Close() error { return b.Shutdown(context.Background()) }

// Shutdown is Close, bounded by ctx: once ctx ends, the writes still queued
// wait for no other process's write lock. Each is tried once more; those
// that cannot commit then are given up, which at-least-once delivery
// allows: an ack, nack or release that is not committed leaves its message
// to be delivered again once its lease runs out (the ack's handler ran, so
// the inbox drops the redelivery), and a publish (or another write a
// caller waits for) fails, so its caller knows it was not stored (an
// outbox keeps the message and forwards it again). A write that ends
// empty-handed this way is never reported as committed. With nothing
// queued, no transaction is begun at all, so an idle process's close does
// not wait for a lock another process holds.
func (b *Backend) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := make([]*Subscriber, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()

	// From ctx's end on, nothing waits for another process's lock.
	stopAbort := context.AfterFunc(ctx, func() { b.abortOnce.Do(func() { close(b.abort) }) })
	defer stopAbort()

	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	b.mu.Lock()
	b.writesClosed = true
	b.writerQ.Add(1)
	b.mu.Unlock()
	// Writes nobody waits for may be held back (Config.AckDelay); a write
	// that is waited for makes the writer commit them now (a flush alone
	// begins no transaction).
	flushed := make(chan error, 1)
	b.writes <- writeRequest{op: flushOp{}, done: flushed}
	errs = append(errs, <-flushed)
	b.writerQ.Wait() // every accepted write has been answered
	b.orphans.Wait() // and the answers nobody waited for taken
	if n := b.givenUp.Load(); n > 0 {
		retry.Warn(b.logger, "Queue closed before some acks, nacks or releases could be committed (another process held the write lock past the shutdown's deadline); their messages are delivered again", nil, watermill.LogFields{"writes": n})
	}
	b.stop()
	b.loops.Wait()
	errs = append(errs, b.readStmts.close(), b.readDB.Close(), b.writeDB.Close())
	return errors.Join(errs...)
}

func (b *Backend) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func (b *Backend) nowMs() int64 { return b.cfg.now().UnixMilli() }

// broadcaster wakes every waiter at once: Wait returns a channel that is
// closed by the next Notify. Armed tells the file-event watcher that
// somebody waits, so that it reads events only then (see watchFileEvents).
type broadcaster struct {
	mu      sync.Mutex
	ch      chan struct{}
	armed   chan struct{} // closed by the first Wait after a Notify
	waiting bool
}

func newBroadcaster() *broadcaster {
	return &broadcaster{ch: make(chan struct{}), armed: make(chan struct{})}
}

func (w *broadcaster) Wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.waiting {
		w.waiting = true
		close(w.armed)
	}
	return w.ch
}

// Armed returns a channel that is closed once somebody waits.
func (w *broadcaster) Armed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.armed
}

func (w *broadcaster) Notify() {
	w.mu.Lock()
	close(w.ch)
	w.ch = make(chan struct{})
	if w.waiting {
		w.waiting = false
		w.armed = make(chan struct{})
	}
	w.mu.Unlock()
}

// watchChanges notices commits of other processes (and of this process's
// writer) without taking a lock. Where the OS reports file changes
// (inotify on Linux), it waits for writes to the changes file, which every
// process's writer writes to after a commit that made deliveries visible
// (changesSuffix): such a commit wakes the subscribers at once, and an
// idle process does no work at all. Otherwise, or when the watch cannot be
// set up, it polls (pollChanges).
func (b *Backend) watchChanges(ctx context.Context, conn *sql.Conn) {
	defer b.loops.Done()
	defer func() { _ = conn.Close() }()
	// Nothing to look for until a subscriber of this process first waits:
	// a process that only publishes or inspects the queue (queuectl, the
	// console) would cost every other process's ring one more event, or
	// poll for nobody.
	select {
	case <-ctx.Done():
		return
	case <-b.wake.Armed():
	}
	if b.cfg.beforeLooking != nil {
		b.cfg.beforeLooking()
	}
	if !b.cfg.PollOnly {
		err := b.watchFileEvents(ctx, conn)
		if err == nil || ctx.Err() != nil {
			return
		}
		b.watching.Store(false)
		retry.Warn(b.logger, "No file change events for the queue file; polling instead", nil, watermill.LogFields{"reason": err.Error()})
	}
	b.pollChanges(ctx, conn)
}

// fileEventsSafetyNet is how often the event-driven watcher also reads
// PRAGMA data_version, in case the file system dropped an event.
const fileEventsSafetyNet = 250 * time.Millisecond

// watchFileEvents wakes the subscribers on every write to the changes
// file. It returns nil when ctx ends and an error when events cannot be
// had (then the caller polls). Open created the file; should someone
// remove it, the watcher makes it again and watches the new one. A
// process that does not ring the bell (an older version of this package)
// wakes the others' subscribers only through the check of PRAGMA
// data_version every fileEventsSafetyNet. watchChanges calls it once a
// subscriber of this process waits.
func (b *Backend) watchFileEvents(ctx context.Context, conn *sql.Conn) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer func() { _ = w.Close() }()
	changesPath := b.file + changesSuffix
	if err := w.Add(changesPath); err != nil {
		return err
	}
	b.watching.Store(true)
	// A commit before the watch was in place raised no event: whoever
	// waits looks once more.
	b.wake.Notify()
	safety := time.NewTicker(b.cfg.versionCheckEvery)
	defer safety.Stop()
	gap := time.NewTimer(0)
	defer gap.Stop()
	var lastVersion int64 = -1
	checkVersion := func() {
		var v int64
		if err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
			if ctx.Err() == nil {
				b.logger.Error("Watch data_version", err, nil)
			}
			return
		}
		if v != lastVersion {
			if lastVersion != -1 {
				b.wake.Notify()
			}
			lastVersion = v
		}
	}
	for {
		// Events are read only while a subscriber waits. Each commit that
		// made deliveries visible raises one, thousands a second under
		// load; left unread, the kernel folds them into one pending event,
		// so a busy process pays nothing for them.
		select {
		case <-ctx.Done():
			return nil
		case <-safety.C:
			checkVersion()
			continue
		case <-b.wake.Armed():
		}
		select {
		case <-ctx.Done():
			return nil
		case <-safety.C:
			checkVersion()
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file watcher closed")
			}
			if !ev.Has(fsnotify.Write) {
				// Removed or renamed (while a process holds it open,
				// removing it raises a Chmod: its link count fell) or
				// its mode changed: watch whatever file the name holds
				// now, made again if it is gone, as the bells will
				// ring (changeBell.ring). Before the wake-up, so that a
				// commit rung on the new file is either seen by it or
				// raises an event.
				if err := b.rewatchChanges(w, changesPath); err != nil {
					return fmt.Errorf("changes file went away: %w", err)
				}
			}
			b.wake.Notify()
			// At most one wake-up per PollMin: under load every waiting
			// subscriber probes on each, and the events of the meantime
			// fold into one.
			gap.Reset(b.cfg.PollMin)
			select {
			case <-ctx.Done():
				return nil
			case <-gap.C:
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file watcher closed")
			}
			// An overflow means events were dropped: look for work.
			b.wake.Notify()
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				b.logger.Error("File change events", err, nil)
			}
		}
	}
}

// rewatchChanges moves w's watch to the file named path, creating it if
// it is missing.
func (b *Backend) rewatchChanges(w *fsnotify.Watcher, path string) error {
	f, err := openChangesFile(path, b.opened)
	if err != nil {
		return err
	}
	_ = f.Close()
	_ = w.Remove(path) // fails when the kernel already dropped the watch
	return w.Add(path)
}

// pollChanges is the watcher where file change events are unavailable.
// Its cheap, frequent signal is the write-ahead log's size and
// modification time: every commit appends to the WAL. As a fallback for
// changes the file's metadata could miss (a checkpoint that resets the log
// within the clock's granularity), it also reads PRAGMA data_version, which
// changes whenever another connection commits, every fallbackEvery polls.
// The interval stays at PollMin while changes keep coming (hotWindow) and
// doubles up to PollMax after that.
//
// It polls only while a subscriber of this process waits, as
// watchFileEvents reads events only then: a process that only publishes
// or inspects the queue (queuectl, the console) never polls, and one
// whose subscribers are all busy does not poll for them. The first look
// after a pause compares with what the last one saw, so a commit in the
// meantime wakes whoever waits.
func (b *Backend) pollChanges(ctx context.Context, conn *sql.Conn) {
	const fallbackEvery = 16
	const hotWindow = 250 * time.Millisecond
	var lastChange time.Time
	walPath := b.file + "-wal"
	var lastSize int64 = -1
	var lastMod time.Time
	var lastVersion int64 = -1
	interval := b.cfg.PollMin
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for polls := 0; ; polls++ {
		select {
		case <-ctx.Done():
			return
		case <-b.wake.Armed():
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		changed := false
		if st, err := os.Stat(walPath); err == nil {
			if st.Size() != lastSize || !st.ModTime().Equal(lastMod) {
				// The first look counts as a change too: a commit since
				// Open, before this loop first looked, must wake whoever
				// waits (TestACommitBeforeTheWatcherFirstLooksWakesTheSubscriber).
				changed = true
				lastSize, lastMod = st.Size(), st.ModTime()
			}
		}
		if polls%fallbackEvery == 0 {
			var v int64
			if err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
				if ctx.Err() != nil {
					return
				}
				b.logger.Error("Watch data_version", err, nil)
			} else if v != lastVersion {
				changed = changed || lastVersion != -1
				lastVersion = v
			}
		}
		switch {
		case changed:
			interval, lastChange = b.cfg.PollMin, time.Now()
			b.wake.Notify()
		case time.Since(lastChange) > hotWindow:
			interval = min(interval*2, b.cfg.PollMax)
		}
		timer.Reset(interval)
	}
}
