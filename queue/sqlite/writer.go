package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/mattn/go-sqlite3"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/retry"
	"github.com/orderflow/orderflow/queue/sqlitefile"
)

// errClosed is returned for work submitted after Close.
var errClosed = errors.New("sqlite queue is closed")

// errGaveUp answers the writes that were still waiting for another
// process's write lock when a bounded close ran out of time
// (Backend.Shutdown): they were not committed. It matches errClosed.
var errGaveUp = fmt.Errorf("%w before the write lock was granted: not committed", errClosed)

// writeOp is one unit of work for the writer. apply runs inside the batch's
// transaction and must be safe to run again from the start: when an op
// fails, the writer rolls the whole transaction back (SQLite would only
// undo the failing statement, leaving the op half done) and applies the
// batch again without it. Each op is so all-or-nothing without the cost of
// a savepoint per op.
type writeOp interface {
	apply(ctx context.Context, tx *writeTx) error
}

// standaloneOp runs outside any transaction (a checkpoint cannot run in one).
type standaloneOp interface {
	writeOp
	standalone()
}

type writeRequest struct {
	op   writeOp
	done chan error // buffered; nil when nobody waits for the answer
}

// writeTx is the writer's open transaction: BEGIN IMMEDIATE … COMMIT run
// by hand on the writer's pinned connection, so that statements prepared on
// that connection are reused. (database/sql's Tx.StmtContext prepares a
// connection-bound statement again on every call, which profiling showed
// as a sixth of the writer's CPU.)
type writeTx struct {
	conn  *sql.Conn
	stmts *stmtCache[*sql.Conn]
	now   int64
	// abort is Backend.abort: closed when a bounded close ran out of
	// time, after which an op waits for no lock.
	abort <-chan struct{}
	// published is set by ops that made new deliveries visible, so the
	// writer wakes this process's subscribers after the commit.
	published bool
	// acked counts deliveries deleted, so garbage collection knows there
	// is work.
	acked int64
}

func (w *writeTx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := w.stmts.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (w *writeTx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := w.stmts.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (w *writeTx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return w.stmts.queryRow(ctx, query, args...)
}

// preparer is what a stmtCache prepares on: the writer's pinned
// connection, or the pool of read connections (a *sql.DB, which prepares a
// statement again on each connection the first time it runs there).
type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// stmtCache keeps one prepared statement per query: compiling a query cost
// SQLite as much as running it.
type stmtCache[DB preparer] struct {
	db DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmtCache[DB preparer](db DB) *stmtCache[DB] {
	return &stmtCache[DB]{db: db, m: map[string]*sql.Stmt{}}
}

func (c *stmtCache[DB]) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		return nil, errClosed
	}
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	c.m[query] = st
	return st, nil
}

// queryRow runs query with its prepared statement.
func (c *stmtCache[DB]) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := c.get(ctx, query)
	if err != nil {
		// Surface the error through Row.Scan.
		return c.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (c *stmtCache[DB]) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}

// submit queues op for the writer. With wait it blocks until the op's
// transaction committed (or failed) and returns the op's error; without, it
// returns once the op is queued.
func (b *Backend) submit(op writeOp, wait bool) error {
	if !wait {
		return b.enqueue(op, nil, false)
	}
	done := make(chan error, 1)
	if err := b.enqueue(op, done, false); err != nil {
		return err
	}
	return <-done
}

// submitUntil queues op and waits for its answer, as submit does, or until
// stop is closed: then it returns errStopped, and the answer, when it
// comes, goes to answered (if not nil) on a goroutine the Backend owns
// (Close waits for it). A subscriber that stops waiting for a claim gives
// back, this way, what the claim took after all.
func (b *Backend) submitUntil(op writeOp, stop <-chan struct{}, answered func(error)) error {
	done := make(chan error, 1) // the writer never blocks on it
	if err := b.enqueue(op, done, true); err != nil {
		return err
	}
	select {
	case err := <-done:
		b.orphans.Done()
		return err
	case <-stop:
	}
	select {
	case err := <-done: // came with the stop
		b.orphans.Done()
		return err
	default:
	}
	go func() {
		defer b.orphans.Done()
		err := <-done
		if answered != nil {
			answered(err)
		}
	}()
	return errStopped
}

// errStopped is submitUntil's error when its caller stopped waiting.
var errStopped = errors.New("stopped waiting for the write")

// enqueue hands op to the writer; done, if not nil, gets its answer. With
// orphan, it also counts a waiter in b.orphans (submitUntil's), under the
// same lock that Close takes before it waits for them.
func (b *Backend) enqueue(op writeOp, done chan error, orphan bool) error {
	b.mu.Lock()
	if b.writesClosed {
		b.mu.Unlock()
		return errClosed
	}
	b.writerQ.Add(1)
	if orphan {
		b.orphans.Add(1)
	}
	b.mu.Unlock()
	b.writes <- writeRequest{op: op, done: done}
	b.writeCounts.queued.Add(1)
	return nil
}

// writer owns the write connection. It takes every queued request and
// commits them together (group commit), at most MaxWriteBatch in one
// transaction, and answers each.
//
// Requests nobody waits for (acks, nacks, releases) are held back for up
// to AckDelay unless something else is to be committed anyway, so that a
// consumer's acks do not each cost a commit. Requests that arrive while
// the writer waits for another process's write lock join the transaction
// once the lock is granted: under contention, batches grow by themselves.
func (b *Backend) writer(ctx context.Context) {
	defer b.loops.Done()
	defer b.bell.close()
	// The writer pins the pool's only connection for its whole life, so
	// statements prepared on it stay prepared.
	conn, err := b.writeDB.Conn(context.Background())
	if err != nil {
		b.logger.Error("Writer cannot get its connection", err, nil)
		b.failWrites(ctx, err)
		return
	}
	defer func() {
		// The checkpoint that may run when the file is closed waits for
		// other processes through the busy handler.
		_, _ = conn.ExecContext(context.Background(), fmt.Sprintf("PRAGMA busy_timeout = %d", b.cfg.BusyTimeout.Milliseconds()))
		_ = conn.Close()
	}()
	stmts := newStmtCache(conn)
	defer func() { _ = stmts.close() }()
	wlock := &writeLock{} // NoLockFile: acquire never has the lock
	if !b.cfg.NoLockFile {
		wlock = openWriteLock(b.file+writeLockSuffix, b.file, b.logger)
	}
	defer wlock.close()
	// The writer waits for the write lock itself (see lock).
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		b.logger.Error("Writer cannot switch off the busy handler", err, nil)
		b.failWrites(ctx, err)
		return
	}

	batch := make([]writeRequest, 0, b.cfg.MaxWriteBatch)
	// The answers and the transaction's part of each batch, reused: a
	// batch is mostly a few acks, and allocating MaxWriteBatch answers per
	// commit made a fifth of an order service's allocations.
	bufs := commitBuffers{
		errs: make([]error, 0, b.cfg.MaxWriteBatch),
		tx:   make([]int, 0, b.cfg.MaxWriteBatch),
	}
	var held <-chan time.Time // fires when deferred requests must be committed
	var heldTimer *time.Timer
	defer func() {
		if heldTimer != nil {
			heldTimer.Stop()
		}
	}()
	for {
		due := false
		select {
		case <-ctx.Done():
			return
		case req := <-b.writes:
			batch = append(batch, req)
		case <-held:
			due = true
		}
		// Let the goroutines the last commit released queue their next
		// requests before the batch is cut.
		runtime.Gosched()
		batch = b.drain(batch)
		if !due && b.cfg.AckDelay > 0 && len(batch) < b.cfg.MaxWriteBatch && !anyAwaited(batch) {
			if held == nil {
				heldTimer = time.NewTimer(b.cfg.AckDelay)
				held = heldTimer.C
			}
			continue
		}
		if heldTimer != nil {
			heldTimer.Stop()
			heldTimer, held = nil, nil
		}
		batch = b.commit(stmts, wlock, batch, &bufs)
		clear(batch)
		batch = batch[:0]
	}
}

// drain appends the requests already queued, up to MaxWriteBatch.
func (b *Backend) drain(batch []writeRequest) []writeRequest {
	for len(batch) < b.cfg.MaxWriteBatch {
		select {
		case req := <-b.writes:
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

// anyAwaited reports whether a caller blocks on one of the requests.
func anyAwaited(batch []writeRequest) bool {
	for _, req := range batch {
		if req.done != nil {
			return true
		}
	}
	return false
}

// failWrites answers every request with err until ctx ends, each a write
// failure for WriteHealth.
func (b *Backend) failWrites(ctx context.Context, err error) {
	b.health.Failed(time.Now(), err)
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-b.writes:
			b.health.Failed(time.Now(), err)
			if req.done != nil {
				req.done <- err
			}
			b.writerQ.Done()
		}
	}
}

// commitBuffers are the writer's scratch slices for one commit, with room
// for MaxWriteBatch requests (a batch never grows past that).
type commitBuffers struct {
	errs []error // the answer to each request of the batch
	tx   []int   // the indexes of the requests committed in the transaction
}

// commit applies batch — standalone ops on their own, the rest in one
// transaction that may take in requests queued while it waited for the
// lock — and answers every request. It returns the batch it answered.
func (b *Backend) commit(stmts *stmtCache[*sql.Conn], wlock *writeLock, batch []writeRequest, bufs *commitBuffers) []writeRequest {
	// Writes are never cancelled halfway: an ack that is dropped because a
	// context ended would only cause a redelivery, but a half-written
	// batch is worse.
	ctx := context.Background()
	if b.txLeftOpen {
		// A transaction left open holds SQLite's lock: it would hold up
		// every other process, and make this one wait for the lock file
		// while holding it (or a checkpoint run inside it).
		_, _ = stmts.db.ExecContext(ctx, "ROLLBACK")
		b.txLeftOpen = false
	}
	errs := append(bufs.errs[:0], make([]error, len(batch))...)
	txBatch := bufs.tx[:0]
	defer func() {
		clear(errs) // drop references to the errors until the next commit
		bufs.errs, bufs.tx = errs[:0], txBatch[:0]
	}()
	for i, req := range batch {
		if _, ok := req.op.(flushOp); ok {
			continue // changes nothing: no transaction of its own
		}
		if sop, ok := req.op.(standaloneOp); ok {
			errs[i] = sop.apply(ctx, &writeTx{conn: stmts.db, stmts: stmts, now: b.nowMs(), abort: b.abort})
			b.health.FailedIf(time.Now(), errs[i], sqlitefile.StorageFailure)
			continue
		}
		txBatch = append(txBatch, i)
	}
	if len(txBatch) > 0 {
		var err error
		batch, errs, txBatch, err = b.commitTx(ctx, stmts, wlock, batch, errs, txBatch)
		if err != nil {
			for _, i := range txBatch {
				errs[i] = err
			}
		}
	}
	for i, req := range batch {
		switch {
		case req.done != nil:
			req.done <- errs[i]
		case errors.Is(errs[i], errGaveUp):
			// An ack, nack or release a bounded close gave up on: its
			// message is delivered again (Shutdown logs the count).
			b.givenUp.Add(1)
		case errs[i] != nil && !errors.Is(errs[i], backend.ErrLeaseLost):
			b.logger.Error("Queued write failed", errs[i], nil)
		}
		b.writerQ.Done()
	}
	return batch
}

// commitTx runs the ops batch[idx] in one transaction, holding the
// queue's lock file (see writeLock) from before BEGIN to after COMMIT.
// Once the write lock is granted it adds the requests queued meanwhile (a
// standalone op among them runs after the commit, without the lock file).
// A failing op is answered with its error and the rest committed without
// it. A commit that made deliveries visible wakes the subscribers, this
// process's and (through the changes file) the others', before any
// standalone op runs: a truncating checkpoint may wait seconds for
// readers. It returns the grown batch, errs and idx.
func (b *Backend) commitTx(ctx context.Context, stmts *stmtCache[*sql.Conn], wlock *writeLock, batch []writeRequest, errs []error, idx []int) ([]writeRequest, []error, []int, error) {
	start := time.Now()
	deadline := start.Add(b.cfg.BusyTimeout)
	joined := len(batch) // requests from here on joined after the lock was granted
	held := wlock.acquire(deadline, b.abort)
	b.writeCounts.lockWait.Add(int64(time.Since(start)))
	if !held && !time.Now().Before(deadline) && !aborted(b.abort) {
		// The wait for the lock file was given up (its holder may be
		// stopped without holding SQLite's lock): SQLite's lock gets a
		// wait of its own. With the spent deadline, every process that
		// gave up at the same moment would try BEGIN once, and all but
		// one would fail.
		deadline = time.Now().Add(b.cfg.BusyTimeout)
	}
	published, batch, errs, idx, err := b.commitLocked(ctx, stmts, deadline, batch, errs, idx)
	if held {
		wlock.release()
	}
	if published {
		b.wake.Notify() // this process's subscribers
		b.bell.ring()   // the other processes'
	}
	if d := time.Since(start); err == nil && d > time.Second {
		retry.Warn(b.logger, "Slow write transaction (waited for another process's lock?)", nil, watermill.LogFields{"duration": d.String(), "ops": len(idx)})
	}
	b.applyStandalone(ctx, stmts, batch[joined:], errs[joined:])
	return batch, errs, idx, err
}

// commitLocked is commitTx's transaction: BEGIN IMMEDIATE (retried until
// deadline), the ops, COMMIT.
func (b *Backend) commitLocked(ctx context.Context, stmts *stmtCache[*sql.Conn], deadline time.Time, batch []writeRequest, errs []error, idx []int) (bool, []writeRequest, []error, []int, error) {
	drained := false
	merge := true // publishes of a topic, acks of a group, applied together (applyMerged)
	for {
		w := &writeTx{conn: stmts.db, stmts: stmts, abort: b.abort}
		asked := time.Now()
		if err := b.begin(ctx, w, deadline); err != nil {
			b.writeCounts.lockWait.Add(int64(time.Since(asked)))
			b.health.Failed(time.Now(), err)
			return false, batch, errs, idx, err
		}
		granted := time.Now()
		b.writeCounts.lockWait.Add(int64(granted.Sub(asked)))
		if !drained {
			drained = true
			joined := len(batch)
			batch = b.drain(batch)
			for i := joined; i < len(batch); i++ {
				errs = append(errs, nil)
				if _, ok := batch[i].op.(standaloneOp); ok {
					continue // applied by commitTx, after the commit
				}
				idx = append(idx, i)
			}
		}
		w.now = b.nowMs() // after the lock wait, so leases start when granted
		failed := -1
		if merge && opsToMerge(batch, idx) {
			if err := applyMerged(ctx, w, batch, idx); err != nil {
				// Which op failed is not known once ops are merged: the
				// batch is applied again, op by op, to find out.
				b.health.FailedIf(time.Now(), err, sqlitefile.StorageFailure)
				if rbErr := rollBack(ctx, w.conn); rbErr != nil {
					b.writeCounts.lockHeld.Add(int64(time.Since(granted)))
					b.txLeftOpen = true
					b.health.Failed(time.Now(), rbErr)
					return false, batch, errs, idx, fmt.Errorf("roll back write transaction: %w", rbErr)
				}
				b.writeCounts.lockHeld.Add(int64(time.Since(granted)))
				merge = false
				deadline = time.Now().Add(b.cfg.BusyTimeout)
				continue
			}
		} else {
			for n, i := range idx {
				if err := batch[i].op.apply(ctx, w); err != nil {
					errs[i], failed = err, n
					b.health.FailedIf(time.Now(), err, sqlitefile.StorageFailure)
					break
				}
			}
		}
		if failed >= 0 {
			err := rollBack(ctx, w.conn)
			b.writeCounts.lockHeld.Add(int64(time.Since(granted)))
			if err != nil {
				b.txLeftOpen = true
				b.health.Failed(time.Now(), err)
				return false, batch, errs, idx, fmt.Errorf("roll back write transaction: %w", err)
			}
			idx = append(idx[:failed:failed], idx[failed+1:]...)
			if len(idx) == 0 {
				return false, batch, errs, idx, nil
			}
			// The same batch without the failed op, with a wait of its own
			// for SQLite's lock (the lock file is still held).
			deadline = time.Now().Add(b.cfg.BusyTimeout)
			continue
		}
		if _, err := w.exec(ctx, "COMMIT"); err != nil {
			rbErr := rollBack(ctx, w.conn)
			b.writeCounts.lockHeld.Add(int64(time.Since(granted)))
			if rbErr != nil {
				b.txLeftOpen = true
			}
			b.health.Failed(time.Now(), err)
			return false, batch, errs, idx, fmt.Errorf("commit write transaction: %w", err)
		}
		committed := time.Now()
		b.health.Succeeded(committed)
		b.writeCounts.lockHeld.Add(int64(committed.Sub(granted)))
		b.acked.Add(w.acked)
		b.writeCounts.count(batch, idx)
		return w.published, batch, errs, idx, nil
	}
}

// opsToMerge reports whether two of the ops batch[idx] are publishes, or
// two are acks, which applyMerged would apply together.
func opsToMerge(batch []writeRequest, idx []int) bool {
	publishes, acks := 0, 0
	for _, i := range idx {
		switch batch[i].op.(type) {
		case *publishOp:
			publishes++
		case *ackOp:
			acks++
		}
		if publishes > 1 || acks > 1 {
			return true
		}
	}
	return false
}

// applyMerged applies the ops batch[idx] in order, except that all the
// publishes to one topic are stored together where the first of them
// stands, and all the acks of one topic and group are applied together
// where the first of them stands: concurrent Publish calls of one message
// each then cost SQLite a multi-row INSERT per chunk of messages
// (insertMessages) instead of two statements per message, and a
// consumer's acks a DELETE per chunk (deleteAcked) instead of one each.
// Moving an op ahead of other ops of the transaction changes nothing
// another process can see: they commit together. An error (a lease lost
// among the acks, too) leaves the transaction to be rolled back; it does
// not say which op failed.
func applyMerged(ctx context.Context, w *writeTx, batch []writeRequest, idx []int) error {
	type topicMessages struct {
		first    int // the position in idx of the topic's first publish
		register bool
		msgs     []storedMessage
	}
	type groupAcks struct {
		first int // the position in idx of the group's first ack
		acks  []lease
	}
	type topicGroup struct{ topic, group string }
	byTopic := map[string]*topicMessages{}
	byGroup := map[topicGroup]*groupAcks{}
	for n, i := range idx {
		switch op := batch[i].op.(type) {
		case *publishOp:
			t := byTopic[op.topic]
			if t == nil {
				t = &topicMessages{first: n}
				byTopic[op.topic] = t
			}
			t.register = t.register || op.register
			t.msgs = append(t.msgs, op.msgs...)
		case *ackOp:
			key := topicGroup{op.topic, op.group}
			g := byGroup[key]
			if g == nil {
				g = &groupAcks{first: n}
				byGroup[key] = g
			}
			g.acks = append(g.acks, op.lease)
		}
	}
	for n, i := range idx {
		switch op := batch[i].op.(type) {
		case *publishOp:
			t := byTopic[op.topic]
			if t.first != n {
				continue // stored with the topic's first publish
			}
			if t.register {
				if err := registerTopic(ctx, w, op.topic); err != nil {
					return err
				}
			}
			if err := insertMessages(ctx, w, op.topic, t.msgs); err != nil {
				return err
			}
		case *ackOp:
			g := byGroup[topicGroup{op.topic, op.group}]
			if g.first != n {
				continue // applied with the group's first ack
			}
			if err := deleteAcked(ctx, w, g.acks); err != nil {
				return err
			}
		default:
			if err := op.apply(ctx, w); err != nil {
				return err
			}
		}
	}
	return nil
}

// rollBack ends the write transaction. SQLite may have rolled it back
// itself already (it may after SQLITE_FULL, SQLITE_IOERR or SQLITE_NOMEM,
// and then ROLLBACK fails with "no transaction is active"): that counts as
// rolled back, so that the op's own error ("database or disk is full") is
// what its caller gets and the rest of the batch is committed without it.
func rollBack(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "ROLLBACK")
	if err == nil {
		return nil
	}
	var open bool
	if rawErr := conn.Raw(func(dc any) error {
		c, ok := dc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("driver connection is a %T", dc)
		}
		open = !c.AutoCommit()
		return nil
	}); rawErr != nil || open {
		return err
	}
	return nil
}

// applyStandalone runs the standalone ops among requests that joined a
// batch while its transaction waited for the lock.
func (b *Backend) applyStandalone(ctx context.Context, stmts *stmtCache[*sql.Conn], batch []writeRequest, errs []error) {
	for i, req := range batch {
		if sop, ok := req.op.(standaloneOp); ok {
			errs[i] = sop.apply(ctx, &writeTx{conn: stmts.db, stmts: stmts, now: b.nowMs(), abort: b.abort})
			b.health.FailedIf(time.Now(), errs[i], sqlitefile.StorageFailure)
		}
	}
}

// begin starts a write transaction. A transaction left open by a failed
// COMMIT and ROLLBACK would block every later batch, so on failure it ends
// any open one and tries once more. Once a bounded close has run out of
// time (b.abort), it tries without waiting, and a lock it cannot have
// fails with errGaveUp.
func (b *Backend) begin(ctx context.Context, w *writeTx, deadline time.Time) error {
	if err := b.lock(ctx, w, deadline); err != nil {
		if _, rbErr := w.conn.ExecContext(ctx, "ROLLBACK"); rbErr == nil {
			err = b.lock(ctx, w, deadline)
		}
		if err == nil {
			return nil
		}
		if isBusy(err) && aborted(b.abort) {
			return fmt.Errorf("begin write transaction: %w (%w)", errGaveUp, err)
		}
		return fmt.Errorf("begin write transaction: %w", err)
	}
	return nil
}

// Waiting for another process's write lock. SQLite's own busy handler
// sleeps 1, 2, 5, 10, … ms between attempts, so under contention the lock
// often lies free while every waiter sleeps; measured across six processes
// on one file, most of a write transaction's time went to that. The
// writer's connection therefore runs with busy_timeout 0 and retries BEGIN
// IMMEDIATE itself after short jittered pauses, doubling from lockPauseMin
// to lockPauseMax, for at most BusyTimeout. (Starting at 20µs and growing
// by half measured the same; fewer attempts cost less CPU. A Go timer that
// short fires after about a millisecond in an idle process anyway.) Since
// the processes take turns on the queue's lock file (writeLock), a writer
// holding it retries only while a writer that does not take it (a
// truncating checkpoint, an older version) holds SQLite's lock, or while
// it goes without the file.
const (
	lockPauseMin = 100 * time.Microsecond
	lockPauseMax = time.Millisecond
)

// lock runs BEGIN IMMEDIATE until it gets the write lock or deadline
// passes.
func (b *Backend) lock(ctx context.Context, w *writeTx, deadline time.Time) error {
	return retryWhileBusy(b.abort, time.Until(deadline), func() (bool, error) {
		_, err := w.exec(ctx, "BEGIN IMMEDIATE")
		busy := isBusy(err)
		if busy {
			b.writeCounts.busyBegins.Add(1)
		}
		return busy, err
	})
}

// retryWhileBusy calls try until it reports that it was not kept out by
// another connection, for at most wait or until stop is closed (nil: never),
// pausing as described above between attempts. try runs at least once. It
// returns the last attempt's error.
func retryWhileBusy(stop <-chan struct{}, wait time.Duration, try func() (busy bool, err error)) error {
	deadline := time.Now().Add(wait)
	pause := lockPauseMin
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		busy, err := try()
		if !busy || time.Now().After(deadline) || aborted(stop) {
			return err
		}
		d := pause/2 + rand.N(pause)
		if stop == nil {
			time.Sleep(d)
		} else {
			if t == nil {
				t = time.NewTimer(d)
			} else {
				t.Reset(d)
			}
			select {
			case <-t.C:
			case <-stop:
			}
		}
		pause = min(pause*2, lockPauseMax)
	}
}

// aborted reports whether stop is closed (a nil stop never is).
func aborted(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func isBusy(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrBusy
}
