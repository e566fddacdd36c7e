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
		if b.acked.Swap(0) == 0 && !b.freePages.Load() && tick%orphanCheckEvery != 0 {
			continue
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

// gcOp deletes, per topic, the messages below the lowest message id any
// subscribed group still has a delivery for; for topics nobody subscribed
// to, the messages older than the orphan retention. At most batch rows.
type gcOp struct {
	batch        int
	orphanBefore int64
	deleted      int64
}

func (op *gcOp) apply(ctx context.Context, w *writeTx) error {
	op.deleted = 0 // a batch may be applied again after a rollback
	topics, err := w.query(ctx, `SELECT t.topic, EXISTS (SELECT 1 FROM queue_subscriptions s WHERE s.topic = t.topic) FROM queue_topics t`)
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
			// MIN over each group's primary-key range is an index lookup;
			// a group with nothing pending does not hold messages back.
			if err := w.queryRow(ctx, `
				SELECT MIN(m) FROM (
					SELECT (SELECT MIN(d.message_id) FROM queue_deliveries d WHERE d.topic = s.topic AND d.consumer_group = s.consumer_group) AS m
					FROM queue_subscriptions s WHERE s.topic = ?)`, t.name).Scan(&low); err != nil {
				return fmt.Errorf("gc: low-water mark of %s: %w", t.name, err)
			}
			if low.Valid {
				res, err = w.exec(ctx, `DELETE FROM queue_messages WHERE id IN (SELECT id FROM queue_messages WHERE topic = ? AND id < ? ORDER BY id LIMIT ?)`, t.name, low.Int64, limit)
			} else {
				res, err = w.exec(ctx, `DELETE FROM queue_messages WHERE id IN (SELECT id FROM queue_messages WHERE topic = ? ORDER BY id LIMIT ?)`, t.name, limit)
			}
		} else {
			res, err = w.exec(ctx, `DELETE FROM queue_messages WHERE id IN (SELECT id FROM queue_messages WHERE topic = ? AND created_at < ? ORDER BY id LIMIT ?)`, t.name, op.orphanBefore, limit)
		}
		if err != nil {
			return fmt.Errorf("gc: delete from %s: %w", t.name, err)
		}
		n, _ := res.RowsAffected()
		op.deleted += n
	}
	return nil
}

// checkpoint keeps the write-ahead log bounded: when it has grown past
// WALLimit (readers kept SQLite's automatic checkpoints from resetting it),
// it runs a truncating checkpoint.
func (b *Backend) checkpoint(ctx context.Context) {
	defer b.loops.Done()
	ticker := time.NewTicker(b.cfg.CheckpointInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		st, err := os.Stat(b.path + "-wal")
		if err != nil || st.Size() <= b.cfg.WALLimit {
			continue
		}
		if err := b.submit(checkpointOp{wait: min(b.cfg.BusyTimeout, checkpointMaxWait)}, true); err != nil && !errors.Is(err, errClosed) {
			b.logger.Error("Checkpoint", err, nil)
		}
	}
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
	err = retryWhileBusy(op.wait, func() (bool, error) {
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
