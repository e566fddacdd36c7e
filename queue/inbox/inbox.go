// Package inbox makes a consumer idempotent: the local transaction that
// applies a message's effects also records the message id, so a redelivered
// message is recognised and acked without repeating its effects. Over an
// at-least-once queue this gives effectively-once processing.
//
// Ids are recorded in table inbox_processed of the service's own SQLite
// file, keyed by (consumer_group, message_id). Open the file as the outbox
// package describes (WAL, _busy_timeout, _txlock=immediate, one connection
// for writers): Handle's transaction then holds the write lock from BEGIN.
// Concurrent Handle calls of one Inbox share transactions (group commit,
// see Handle), so concurrent deliveries of one id run one after the other
// and the second sees the first's record; with a larger pool, or several
// Inboxes on one file, the primary key still guarantees that at most one
// of them commits. Do runs a service's other writes (an HTTP request's) in
// the same shared transactions, and WriteHealth tells a readiness check
// whether they commit.
package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/orderflow/orderflow/queue/sqlitefile"
	"github.com/orderflow/orderflow/queue/writehealth"
)

// Config configures an Inbox. Zero values take the defaults.
type Config struct {
	// Retention is how long processed ids are kept; RunRetention deletes
	// older ones. Zero keeps them forever. Trade-off: a message
	// redelivered after its id was deleted is processed again, so keep
	// it well above the longest redelivery delay of the queue (retries,
	// dead-letter replay).
	Retention time.Duration
	// RetentionInterval is how often RunRetention deletes. Defaults to 1m.
	RetentionInterval time.Duration
	// RetentionBatchSize caps the rows one delete statement removes, so
	// the write lock is held briefly. Defaults to 1000.
	RetentionBatchSize int
	// Logger defaults to watermill.NopLogger.
	Logger watermill.LoggerAdapter
}

func (c *Config) setDefaults() {
	if c.RetentionInterval == 0 {
		c.RetentionInterval = time.Minute
	}
	if c.RetentionBatchSize == 0 {
		c.RetentionBatchSize = 1000
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports an unusable config.
func (c Config) Validate() error {
	var errs []error
	if c.Retention < 0 {
		errs = append(errs, errors.New("retention must not be negative"))
	}
	if c.RetentionInterval <= 0 {
		errs = append(errs, errors.New("retention interval must be positive"))
	}
	if c.RetentionBatchSize < 1 {
		errs = append(errs, errors.New("retention batch size must be positive"))
	}
	return errors.Join(errs...)
}

// TxFunc applies a message's effects within the inbox transaction. It must
// do all its work through tx (with one pooled connection, using the
// *sql.DB instead would wait for the connection tx holds).
type TxFunc func(ctx context.Context, tx *sql.Tx) error

// Inbox records processed message ids. It is safe for concurrent use.
// It prepares a statement on the DB, which Close releases; the DB stays
// the caller's to close.
type Inbox struct {
	db     *sql.DB
	cfg    Config
	logger watermill.LoggerAdapter
	// record is prepared once on the DB: Tx.StmtContext then reuses it on
	// each connection, where a query string would be compiled again for
	// every message.
	record *sql.Stmt

	// Group commit (see Handle): the units waiting for a transaction, and
	// whether one caller is running transactions for the others.
	mu      sync.Mutex
	queue   []*unit
	leading bool

	// health records the outcome of the shared transactions (WriteHealth):
	// a failed BEGIN or COMMIT whatever its cause; a failure to get the
	// connection or of a unit's work only if it says the file cannot take
	// writes (not a cancellation, nor a handler's own error).
	health writehealth.Record
}

// unit is one Handle call waiting for its transaction.
type unit struct {
	ctx       context.Context
	group, id string // id "": no message to record (Do)
	fn        TxFunc
	lead      chan struct{}   // closed when this caller is to run the next batch
	done      chan unitResult // buffered
}

type unitResult struct {
	duplicate bool
	err       error
	fromFn    bool // err is what the unit's fn returned, handed back as it is
	panicked  any
}

// New creates table inbox_processed in db if it does not exist.
func New(ctx context.Context, db *sql.DB, cfg Config) (*Inbox, error) {
	if db == nil {
		return nil, errors.New("inbox: db is nil")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("inbox: invalid config: %w", err)
	}
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS inbox_processed (
			consumer_group TEXT    NOT NULL,
			message_id     TEXT    NOT NULL,
			processed_at   INTEGER NOT NULL,
			PRIMARY KEY (consumer_group, message_id)
		)`,
		`CREATE INDEX IF NOT EXISTS inbox_processed_at ON inbox_processed (processed_at)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("inbox: initialize schema: %w", err)
		}
	}
	record, err := db.PrepareContext(ctx, recordQuery)
	if err != nil {
		return nil, fmt.Errorf("inbox: prepare: %w", err)
	}
	return &Inbox{db: db, cfg: cfg, logger: cfg.Logger, record: record}, nil
}

const recordQuery = `INSERT INTO inbox_processed (consumer_group, message_id, processed_at) VALUES (?, ?, ?)
	ON CONFLICT (consumer_group, message_id) DO NOTHING`

// Close releases the statement New prepared on the DB, on every
// connection it was prepared on. Call it once the calls using the Inbox
// have returned, before closing the DB; a second Close does nothing. It
// does not close the DB. An Inbox used after Close still works
// (database/sql then prepares the statement again for every message), so
// a handler that outlives its service's stop is not failed by it.
func (i *Inbox) Close() error {
	if err := i.record.Close(); err != nil {
		return fmt.Errorf("inbox: close: %w", err)
	}
	return nil
}

// Handle runs fn once per (group, messageID): in one local transaction it
// records the id, runs fn and commits. If the id is already recorded it
// returns duplicate=true without running fn. If fn (or the commit) fails,
// nothing of it is recorded and the error is returned, so the next
// delivery runs fn again. If fn panics, its work is rolled back and the
// panic continues in the caller.
//
// Concurrent calls share transactions (group commit): one caller runs the
// calls queued at that moment in one transaction, each inside a savepoint,
// so that a failing fn is rolled back alone, and commits once; a commit
// per message was a tenth of the services' CPU. fn may therefore run on
// another caller's goroutine, after other calls' fns in the same
// transaction (whose effects it sees, as it would had they committed
// first), and a failing commit fails every call of the batch — those
// whose fn had failed too, since that failure may rest on the batch's
// uncommitted work. fn's own error is returned as it is; the inbox's
// failures (the connection, BEGIN, COMMIT) are prefixed "inbox:".
//
// ctx cancels the wait for a transaction (a call whose ctx ended before
// its turn is not run). fn is given ctx's values without its
// cancellation: once in the transaction, its statements and the commit
// run to the end whatever ctx does (a unit takes milliseconds; see
// runUnit). processed_at is the time of the record's insert in Unix
// milliseconds.
//
// Caveats of the shared transaction: fn must not call Handle (it would
// wait for its own batch); and a panic in fn is re-raised on the caller's
// goroutine without the stack of the goroutine it happened on.
func (i *Inbox) Handle(ctx context.Context, group, messageID string, fn TxFunc) (duplicate bool, err error) {
	if group == "" || messageID == "" {
		return false, errors.New("inbox: consumer group and message id are required")
	}
	return i.run(ctx, group, messageID, fn)
}

// Do runs fn in the transactions Handle shares, without recording a
// message id: for work of the service's that is not a message, such as an
// HTTP request that places an order, which then commits together with
// the messages being handled and with the other requests of the moment
// instead of alone (a commit per request was about a tenth of the order
// service's CPU). fn is rolled back alone when it fails or panics, and
// its effects are committed once Do returns nil. What Handle says of its
// fn holds for Do's: it may run on another caller's goroutine, after and
// seeing other calls' work, with ctx's values but not its cancellation; a
// failing commit fails every call of the batch; it must not call Handle or
// Do.
func (i *Inbox) Do(ctx context.Context, fn TxFunc) error {
	_, err := i.run(ctx, "", "", fn)
	return err
}

// run queues fn for a shared transaction, recording (group, messageID)
// with it unless messageID is empty, and waits for its result.
func (i *Inbox) run(ctx context.Context, group, messageID string, fn TxFunc) (duplicate bool, err error) {
	if fn == nil {
		return false, errors.New("inbox: fn is nil")
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("inbox: %w", err)
	}
	u := &unit{ctx: ctx, group: group, id: messageID, fn: fn, lead: make(chan struct{}), done: make(chan unitResult, 1)}
	i.mu.Lock()
	i.queue = append(i.queue, u)
	lead := !i.leading
	i.leading = true
	i.mu.Unlock()

	if !lead {
		select {
		case r := <-u.done:
			return r.unwrap()
		case <-u.lead:
		case <-ctx.Done():
			if i.withdraw(u) {
				return false, fmt.Errorf("inbox: %w", ctx.Err())
			}
			// A batch took u (it is answered soon), or u leads next.
			select {
			case r := <-u.done:
				return r.unwrap()
			case <-u.lead:
			}
		}
	}
	i.runBatch()
	return (<-u.done).unwrap()
}

// Waiting is how many Handle and Do calls wait for a shared transaction
// (not counting those whose transaction runs): under load, how far the
// group commit is behind.
func (i *Inbox) Waiting() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.queue)
}

// withdraw takes u out of the queue if no batch has taken it and it has
// not been handed the lead, and reports whether it did.
func (i *Inbox) withdraw(u *unit) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	select {
	case <-u.lead:
		return false
	default:
	}
	for n, q := range i.queue {
		if q == u {
			i.queue = append(i.queue[:n], i.queue[n+1:]...)
			return true
		}
	}
	return false
}

func (r unitResult) unwrap() (bool, error) {
	if r.panicked != nil {
		panic(r.panicked)
	}
	if r.fromFn {
		return false, r.err
	}
	if r.err != nil {
		return false, fmt.Errorf("inbox: %w", r.err)
	}
	return r.duplicate, nil
}

// runBatch runs the queued units in one transaction and answers them, then
// hands the lead to the first unit queued meanwhile, or gives it up. The
// leader runs one batch only, so that its own message is not held up
// behind the others' under steady load.
func (i *Inbox) runBatch() {
	i.mu.Lock()
	batch := i.queue
	i.queue = nil
	i.mu.Unlock()

	answered := false
	defer func() {
		// Also when the batch ends abnormally (a panic outside fn, or
		// runtime.Goexit in fn): nobody may wait forever.
		if !answered {
			for _, u := range batch {
				u.done <- unitResult{err: errors.New("the goroutine running the transaction ended before it committed")}
			}
		}
		i.mu.Lock()
		if len(i.queue) == 0 {
			i.leading = false
		} else {
			close(i.queue[0].lead)
		}
		i.mu.Unlock()
	}()
	if len(batch) == 0 {
		answered = true // every unit withdrew
		return
	}
	results := i.inTx(batch)
	for n, u := range batch {
		u.done <- results[n]
	}
	answered = true
}

// inTx runs the units in one transaction, each in a savepoint, and returns
// their results. The transaction is begun without cancellation, so a ctx
// cancelled after its fn succeeded cannot undo a unit.
func (i *Inbox) inTx(batch []*unit) []unitResult {
	results := make([]unitResult, len(batch))
	ran := make([]bool, len(batch)) // units whose fn ran in the transaction
	// fail answers the units with err, the transaction's failure, unless
	// they panicked or were not run (their context ended). A unit whose
	// own work failed gets err too: its failure may rest on work of the
	// batch that is now not committed (another request's Idempotency-Key,
	// an order another request cancelled), so it is no answer to give.
	fail := func(err error) []unitResult {
		for n := range results {
			switch {
			case results[n].panicked != nil:
			case ran[n] && results[n].err != nil:
				results[n] = unitResult{err: fmt.Errorf("%w (its own work had failed before: %v)", err, results[n].err)}
			case results[n].err == nil:
				results[n] = unitResult{err: err}
			}
		}
		return results
	}
	connCtx, release := allCancelled(batch)
	conn, err := i.db.Conn(connCtx)
	release()
	if err != nil {
		for n, u := range batch {
			if uErr := u.ctx.Err(); uErr != nil {
				results[n].err = uErr // what ended the wait
			}
		}
		i.health.FailedIf(time.Now(), err, sqlitefile.StorageFailure) // not the units' cancellation
		return fail(fmt.Errorf("get connection: %w", err))
	}
	defer conn.Close()
	ctx := context.WithoutCancel(batch[0].ctx)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		i.health.Failed(time.Now(), err)
		return fail(fmt.Errorf("begin: %w", err))
	}
	// Ends the transaction unless it was committed, also when the batch
	// ends abnormally, before conn.Close (which would wait for it).
	defer func() { _ = tx.Rollback() }()
	kept := 0 // units whose work stays in the transaction
	for n, u := range batch {
		if err := u.ctx.Err(); err != nil {
			results[n].err = err
			continue
		}
		var clean bool
		results[n], clean = i.runUnit(tx, u)
		ran[n] = true
		i.health.FailedIf(time.Now(), results[n].err, sqlitefile.StorageFailure) // not a handler's own error
		if !clean {
			// A failed unit's work could not be rolled back: nothing of
			// the transaction may be committed (the deferred Rollback).
			return fail(fmt.Errorf("transaction abandoned: a unit's failure could not be rolled back alone: %w", results[n].err))
		}
		if results[n].err == nil && results[n].panicked == nil {
			kept++
		}
	}
	if kept == 0 {
		return results // nothing to commit: the deferred Rollback
	}
	if err := tx.Commit(); err != nil {
		i.health.Failed(time.Now(), err)
		return fail(fmt.Errorf("commit: %w", err))
	}
	i.health.Succeeded(time.Now())
	return results
}

// WriteHealth reports, without writing, whether the inbox's transactions
// commit: an error when the last one failed (or a unit of it failed
// because the file cannot take writes: full, failing, read-only) within
// writehealth.FailureWindow with none committed since; nil otherwise.
// A readiness check calls it: a full disk leaves pings and reads
// answering while every commit fails.
func (i *Inbox) WriteHealth() error {
	if err := i.health.Err(time.Now()); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// allCancelled returns a context that is cancelled once every unit's
// context is, so that the wait for the connection ends when nobody in the
// batch wants it any more; release frees it.
func allCancelled(batch []*unit) (ctx context.Context, release func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(batch[0].ctx))
	var mu sync.Mutex
	left := len(batch)
	stops := make([]func() bool, 0, len(batch))
	for _, u := range batch {
		stops = append(stops, context.AfterFunc(u.ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if left--; left == 0 {
				cancel()
			}
		}))
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// runUnit records u's id (if it has one) and runs its fn inside a
// savepoint of tx, rolling back to it when fn fails or panics. clean is
// false when a failed unit could not be rolled back, so that tx holds part
// of its work.
func (i *Inbox) runUnit(tx *sql.Tx, u *unit) (r unitResult, clean bool) {
	// Once in the transaction, statements run to the end whatever u.ctx
	// does (it still ends the wait for a batch): a unit takes milliseconds,
	// and mattn/go-sqlite3 runs every Exec under a cancellable context in
	// a goroutine of its own, so that it can interrupt it — a goroutine
	// (and its stack growth) per statement.
	ctx := context.WithoutCancel(u.ctx)
	if _, err := tx.ExecContext(ctx, "SAVEPOINT inbox_unit"); err != nil {
		return unitResult{err: fmt.Errorf("savepoint: %w", err)}, true
	}
	undo := func() error {
		_, err := tx.ExecContext(ctx, "ROLLBACK TO inbox_unit")
		if err == nil {
			_, err = tx.ExecContext(ctx, "RELEASE inbox_unit")
		}
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			err := undo()
			r, clean = unitResult{panicked: p}, err == nil
			if err != nil {
				r.err = err
			}
		}
	}()
	byFn := false // err, if any, is fn's own
	err := func() error {
		if u.id == "" {
			byFn = true
			return u.fn(ctx, tx)
		}
		res, err := tx.StmtContext(ctx, i.record).ExecContext(ctx, u.group, u.id, time.Now().UnixMilli())
		if err != nil {
			return fmt.Errorf("record message: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("record message: %w", err)
		}
		if n == 0 {
			r.duplicate = true
			return nil
		}
		byFn = true
		return u.fn(ctx, tx)
	}()
	if err != nil {
		if rbErr := undo(); rbErr != nil {
			return unitResult{err: errors.Join(err, fmt.Errorf("rollback: %w", rbErr))}, false
		}
		return unitResult{err: err, fromFn: byFn}, true
	}
	if _, err := tx.ExecContext(ctx, "RELEASE inbox_unit"); err != nil {
		return unitResult{err: fmt.Errorf("release savepoint: %w", err)}, false
	}
	return r, true
}

// PurgeProcessedBefore deletes the ids processed before t, in statements
// of at most RetentionBatchSize rows, and says how many it deleted.
func (i *Inbox) PurgeProcessedBefore(ctx context.Context, t time.Time) (int64, error) {
	var total int64
	for {
		res, err := i.db.ExecContext(ctx,
			`DELETE FROM inbox_processed WHERE rowid IN (
				SELECT rowid FROM inbox_processed WHERE processed_at < ? ORDER BY processed_at LIMIT ?)`,
			t.UnixMilli(), i.cfg.RetentionBatchSize)
		if err != nil {
			return total, fmt.Errorf("inbox: purge processed: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("inbox: purge processed: %w", err)
		}
		total += n
		if n < int64(i.cfg.RetentionBatchSize) {
			return total, nil
		}
	}
}

// RunRetention deletes ids older than Retention every RetentionInterval
// until ctx is cancelled, then returns nil. It returns at once when
// Retention is zero. Failures are logged and retried at the next tick.
func (i *Inbox) RunRetention(ctx context.Context) error {
	if i.cfg.Retention == 0 {
		return nil
	}
	t := time.NewTicker(i.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := i.PurgeProcessedBefore(ctx, time.Now().Add(-i.cfg.Retention))
		if err != nil && ctx.Err() == nil {
			i.logger.Error("Cannot purge processed message ids", err, nil)
			continue
		}
		if n > 0 {
			i.logger.Debug("Purged processed message ids", watermill.LogFields{"deleted": n})
		}
	}
}
