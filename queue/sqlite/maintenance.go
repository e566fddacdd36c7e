package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"
)

// collectGarbage deletes messages no consumer group still needs, in
// bounded batches, every GCInterval — but only after this process acked
// something (a collection takes the write lock, and an idle process should
// not), and every orphanCheckEvery intervals for topics nobody reads.
func (b *Backend) collectGarbage(ctx context.Context) {
	defer b.loops.Done()
	const orphanCheckEvery = 60
	ticker := time.NewTicker(b.cfg.GCInterval)
	defer ticker.Stop()
	for tick := 1; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if b.acked.Swap(0) == 0 && !b.freePages.Load() {
			if tick%orphanCheckEvery != 0 {
				continue
			}
			// Nothing acked here: look, with a read, for what only this
			// check collects, so that an idle process takes no write
			// lock.
			if found, err := b.collectableWithoutAcks(ctx); err != nil {
				if ctx.Err() == nil {
					b.logger.Error("Look for messages of topics nobody reads", err, nil)
				}
				continue
			} else if !found {
				continue
			}
		}
		for {
			op := &gcOp{batch: b.cfg.GCBatch, orphanBefore: b.nowMs() - b.cfg.OrphanRetention.Milliseconds()}
			if err := b.submit(op, true); err != nil {
				if !errors.Is(err, errClosed) {
					b.logger.Error("Collect acknowledged messages", err, nil)
				}
				break
			}
			if op.deleted < int64(b.cfg.GCBatch) || ctx.Err() != nil {
				break // caught up; a full batch means there may be more
			}
		}
		vac := &vacuumOp{pages: 8192}
		if err := b.submit(vac, true); err != nil && !errors.Is(err, errClosed) {
			b.logger.Error("Incremental vacuum", err, nil)
		}
		b.freePages.Store(vac.left > 0)
	}
}

// heldTopics is the start of a statement that walks, as the table held,
// the topics that hold messages: from one to the next along the (topic,
// id) index, so that a file with many topics (which are never removed)
// costs one lookup per topic holding messages, not a statement per topic.
const heldTopics = `
		WITH RECURSIVE held(topic) AS (
			SELECT MIN(topic) FROM queue_messages
			UNION ALL
			SELECT (SELECT MIN(topic) FROM queue_messages WHERE topic > held.topic) FROM held WHERE held.topic IS NOT NULL
		)`

// lowWaterMark is the query of the lowest message id any subscribed group
// of topic (an SQL expression) still has a delivery for; NULL when none
// has. MIN over each group's primary-key range is an index lookup; a group
// with nothing pending does not hold messages back.
func lowWaterMark(topic string) string {
	return `SELECT MIN(low) FROM (
			SELECT (SELECT MIN(d.message_id) FROM queue_deliveries d
				WHERE d.topic = s.topic AND d.consumer_group = s.consumer_group) AS low
			FROM queue_subscriptions s WHERE s.topic = ` + topic + `)`
}

// collectableWithoutAcks reports, reading, whether a collection would find
// work that no ack of this process announced: messages every group has
// acked (the process that acked them may have stopped before collecting
// them), messages of a topic nobody subscribed to, older than the orphan
// retention (its first message, in id order, is its oldest but for clock
// steps), or free pages to vacuum
// (only a file in incremental auto-vacuum mode gives them back; an older
// file or one made without it keeps them, and would be found to have some
// at every look).
func (b *Backend) collectableWithoutAcks(ctx context.Context) (bool, error) {
	var found bool
	err := b.readDB.QueryRowContext(ctx, heldTopics+`
		SELECT EXISTS (
			SELECT 1 FROM held
			WHERE topic IS NOT NULL AND CASE
				WHEN EXISTS (SELECT 1 FROM queue_subscriptions s WHERE s.topic = held.topic)
				THEN (SELECT MIN(id) FROM queue_messages m WHERE m.topic = held.topic) <
					COALESCE((`+lowWaterMark("held.topic")+`), 9223372036854775807)
				ELSE (SELECT created_at FROM queue_messages m WHERE m.topic = held.topic ORDER BY id LIMIT 1) < ?
			END)
		OR ((SELECT auto_vacuum FROM pragma_auto_vacuum()) = 2
			AND (SELECT freelist_count FROM pragma_freelist_count()) > 0)`,
		b.nowMs()-b.cfg.OrphanRetention.Milliseconds()).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("look for collectable messages: %w", err)
	}
	return found, nil
}

// gcOp deletes, per topic that holds messages, the messages below the
// lowest message id any subscribed group still has a delivery for; for
// topics nobody subscribed to, the messages older than the orphan
// retention. At most batch rows.
type gcOp struct {
	batch        int
	orphanBefore int64
	deleted      int64
}

func (op *gcOp) apply(ctx context.Context, w *writeTx) error {
	op.deleted = 0 // a batch may be applied again after a rollback
	// Only topics that hold messages, found by walking the (topic, id)
	// index from one topic to the next: a file with many topics (which are
	// never removed) would otherwise cost two statements per topic under
	// the write lock every GCInterval.
	topics, err := w.query(ctx, heldTopics+`
		SELECT topic, EXISTS (SELECT 1 FROM queue_subscriptions s WHERE s.topic = held.topic) FROM held WHERE topic IS NOT NULL`)
	if err != nil {
		return fmt.Errorf("gc: list topics: %w", err)
	}
	type topicState struct {
		name       string
		subscribed bool
	}
	var all []topicState
	for topics.Next() {
		var t topicState
		if err := topics.Scan(&t.name, &t.subscribed); err != nil {
			topics.Close()
			return fmt.Errorf("gc: %w", err)
		}
		all = append(all, t)
	}
	topics.Close()
	for _, t := range all {
		if op.deleted >= int64(op.batch) {
			return nil
		}
		limit := int64(op.batch) - op.deleted
		var res sql.Result
		if t.subscribed {
			var low sql.NullInt64
			if err := w.queryRow(ctx, lowWaterMark("?"), t.name).Scan(&low); err != nil {
				return fmt.Errorf("gc: low-water mark of %s: %w", t.name, err)
			}
			if low.Valid {
				res, err = w.exec(ctx, `DELETE FROM queue_messages WHERE id IN (SELECT id FROM queue_messages WHERE topic = ? AND id < ? ORDER BY id LIMIT ?)`, t.name, low.Int64, limit)
			} else {
				res, err = w.exec(ctx, `DELETE FROM queue_messages WHERE id IN (SELECT id FROM queue_messages WHERE topic = ? ORDER BY id LIMIT ?)`, t.name, limit)
			}
		} else {
			res, err = deleteOrphans(ctx, w, t.name, op.orphanBefore, limit)
		}
		if err != nil {
			return fmt.Errorf("gc: delete from %s: %w", t.name, err)
		}
		n, _ := res.RowsAffected()
		op.deleted += n
	}
	return nil
}

// deleteOrphans deletes the messages of topic, which no group subscribed
// to, created before orphanBefore: at most limit, oldest first. It reads
// the topic's first message only (its oldest, in id order) while none has
// expired, and at most limit rows when some have: a filter on created_at
// walking the (topic, id) index would read every message of the topic at
// every collection while none is old enough, under the write lock, and a
// topic nobody reads holds an hour of messages (order.events: hundreds of
// thousands). A message written under a clock stepped back, behind a
// younger one, waits for the messages before it to expire.
func deleteOrphans(ctx context.Context, w *writeTx, topic string, orphanBefore, limit int64) (sql.Result, error) {
	var oldest int64
	err := w.queryRow(ctx, `SELECT created_at FROM queue_messages WHERE topic = ? ORDER BY id LIMIT 1`, topic).Scan(&oldest)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return noRows{}, nil
	case err != nil:
		return nil, err
	case oldest >= orphanBefore:
		return noRows{}, nil
	}
	return w.exec(ctx, `DELETE FROM queue_messages WHERE id IN (SELECT id FROM queue_messages WHERE topic = ? ORDER BY id LIMIT ?) AND created_at < ?`, topic, limit, orphanBefore)
}

// noRows is the sql.Result of a statement not run: nothing affected.
type noRows struct{}

func (noRows) LastInsertId() (int64, error) { return 0, nil }
func (noRows) RowsAffected() (int64, error) { return 0, nil }

// passiveCheckpointEvery is how often the checkpointing process copies
// the write-ahead log into the database file while commits keep coming.
// SQLite's automatic checkpoint runs inside the COMMIT that takes the log
// past 1,000 pages; copying and syncing those pages there took 10–20 ms
// on a slow disk, and every write queued behind that commit waited for it:
// it made the p99 of publish→handler latency. Copied in the background
// every 20 ms, the log holds a few hundred new pages at most, and the
// automatic checkpoint finds little or nothing left to do (it stays on: it
// is the moment at which the log can start over, just after a commit of
// this connection). In more than one process at once, the passive
// checkpoints copied hot pages over and over and cost single-message
// throughput; hence one checkpointing process per file (the holder of the
// lock on the file named by checkpointLockSuffix).
const passiveCheckpointEvery = 20 * time.Millisecond

// checkpointLockSuffix names, beside the queue file, the file whose lock
// makes a process the file's checkpointer.
const checkpointLockSuffix = "-checkpointer"

// checkpoint keeps the write-ahead log short. The process that holds the
// checkpoint lock runs a passive checkpoint (no write lock taken, so every
// process's writers go on meanwhile; it copies only what no reader still
// needs) every passiveCheckpointEvery while the log changes or a checkpoint
// left part of it uncopied, and looks again every CheckpointInterval when
// it has been quiet. The others try to take the lock every
// CheckpointInterval, so that one takes over when the checkpointing process
// ends; a process that cannot use the lock file at all checkpoints as if it
// held the lock (repeated work, not wrong) and keeps trying. Every process
// also checks the log's size every CheckpointInterval: when readers kept it
// from starting over and it has grown past WALLimit, a truncating
// checkpoint (which waits for them, holding the write lock) brings it back
// to zero. Every CheckpointInterval it also checks that the queue's path
// still names the file opened (checkFile).
func (b *Backend) checkpoint(ctx context.Context) {
	defer b.loops.Done()
	walPath := b.file + "-wal"
	var lead checkpointLead
	defer lead.stop()
	var lastSize int64 = -1
	var lastMod, lastLimitCheck, lastFileCheck time.Time
	wait := time.NewTimer(b.cfg.CheckpointInterval)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
		}
		if time.Since(lastFileCheck) >= b.cfg.CheckpointInterval {
			lastFileCheck = time.Now()
			b.checkFile()
		}
		next := b.cfg.CheckpointInterval
		st, err := os.Stat(walPath)
		if err != nil {
			wait.Reset(next)
			continue
		}
		if time.Since(lastLimitCheck) >= b.cfg.CheckpointInterval {
			lastLimitCheck = time.Now()
			lead.try(ctx, b)
			if st.Size() > b.cfg.WALLimit {
				if err := b.submit(checkpointOp{wait: min(b.cfg.BusyTimeout, checkpointMaxWait)}, true); err != nil && !errors.Is(err, errClosed) {
					b.logger.Error("Checkpoint", err, nil)
				}
			}
		}
		if lead.conn == nil || (st.Size() == lastSize && st.ModTime().Equal(lastMod)) {
			wait.Reset(next)
			continue
		}
		lastSize, lastMod = st.Size(), st.ModTime()
		switch complete, err := passiveCheckpoint(ctx, lead.conn); {
		case err != nil:
			if ctx.Err() == nil {
				b.logger.Error("Checkpoint", err, nil)
			}
			// Back off to CheckpointInterval (and one log line each).
		case !complete:
			// A reader's snapshot kept part of the log from being copied:
			// try again soon even if nothing is written meanwhile, or the
			// rest would wait for SQLite's automatic checkpoint in a COMMIT.
			lastSize = -1
			next = passiveCheckpointEvery
		default:
			next = passiveCheckpointEvery
		}
		wait.Reset(next)
	}
}

// checkpointLead is the checkpoint loop's part in the election of the
// file's checkpointer: the lock while it is held, and the reader
// connection the checkpoints run on (its own, so that a checkpoint's two
// syncs never keep a subscriber's probe waiting for a pooled connection).
type checkpointLead struct {
	release func()    // nil: another process checkpoints (or not tried yet)
	conn    *sql.Conn // set while this process checkpoints
	warned  bool
}

// try takes the lock if it is free. A lock file that cannot be used makes
// this process checkpoint anyway, until a later try gets the lock.
func (l *checkpointLead) try(ctx context.Context, b *Backend) {
	if l.release != nil {
		return
	}
	release, err := tryLeadCheckpoints(b.file+checkpointLockSuffix, b.file)
	if err != nil && !l.warned {
		l.warned = true
		b.logger.Error("Cannot use the checkpoint lock file; this process checkpoints anyway (with others doing the same, checkpoints repeat work)", err, nil)
	}
	l.release = release
	if release == nil && err == nil {
		// Another process checkpoints (after this one did without the
		// lock file, if that became usable again).
		if l.conn != nil {
			_ = l.conn.Close()
			l.conn = nil
		}
		return
	}
	if l.conn == nil {
		conn, err := b.readDB.Conn(ctx)
		if err != nil {
			if ctx.Err() == nil {
				b.logger.Error("Checkpoint connection", err, nil)
			}
			return
		}
		l.conn = conn
	}
}

func (l *checkpointLead) stop() {
	if l.conn != nil {
		_ = l.conn.Close()
	}
	if l.release != nil {
		l.release()
	}
}

// passiveCheckpoint runs PRAGMA wal_checkpoint(PASSIVE) and reports whether
// it copied the whole log. The checkpoint itself never waits: another
// connection's checkpoint in progress makes it return at once, busy and
// incomplete (that one does the work). Preparing the statement may still
// wait in the busy handler like any read, e.g. while another connection
// recovers the WAL index after a crash.
func passiveCheckpoint(ctx context.Context, conn *sql.Conn) (complete bool, err error) {
	var busy, logFrames, checkpointed int
	if err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &checkpointed); err != nil {
		return false, fmt.Errorf("passive wal checkpoint: %w", err)
	}
	return busy == 0 && checkpointed == logFrames, nil
}

// vacuumOp returns up to pages free pages (32 MiB of 4 KiB pages) to the
// file system and reports how many free pages are left; a no-op on files
// created without incremental auto-vacuum.
type vacuumOp struct {
	pages int
	left  int64
}

func (op *vacuumOp) apply(ctx context.Context, w *writeTx) error {
	rows, err := w.conn.QueryContext(ctx, fmt.Sprintf("PRAGMA incremental_vacuum(%d)", op.pages))
	if err != nil {
		return fmt.Errorf("incremental vacuum: %w", err)
	}
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("incremental vacuum: %w", err)
	}
	var autoVacuum int
	if err := w.conn.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&autoVacuum); err != nil || autoVacuum != 2 {
		return err // not incremental: nothing to hand back
	}
	return w.conn.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&op.left)
}

// checkpointMaxWait bounds how long one truncating checkpoint may hold up
// this process's writer; if it cannot finish, the next CheckpointInterval
// tries again.
const checkpointMaxWait = 2 * time.Second

type checkpointOp struct{ wait time.Duration }

func (checkpointOp) standalone() {}

// apply runs a truncating checkpoint, which needs the write lock and has
// to wait until no reader uses an older snapshot. It waits the way the
// writer does (see lock): attempts that give up at once (busy_timeout 0),
// after short pauses, for up to op.wait. With SQLite's busy handler
// instead, it slept milliseconds between attempts while the other
// processes' writers retried every few hundred microseconds, and the WAL
// grew to 2.4× its limit while 1M messages passed.
func (op checkpointOp) apply(ctx context.Context, w *writeTx) error {
	st, err := w.stmts.get(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	if err != nil {
		return err
	}
	err = retryWhileBusy(w.abort, op.wait, func() (bool, error) {
		var busy, logPages, checkpointed int
		if err := st.QueryRowContext(ctx).Scan(&busy, &logPages, &checkpointed); err != nil {
			return isBusy(err), err
		}
		return busy != 0, nil
	})
	if err != nil && !isBusy(err) {
		return fmt.Errorf("wal checkpoint: %w", err)
	}
	return nil // still busy after op.wait: the next CheckpointInterval tries again
}
