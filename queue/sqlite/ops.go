package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/orderflow/orderflow/queue/backend"
)

// storedMessage is a message as the publisher writes it.
type storedMessage struct {
	uuid     string
	payload  []byte
	metadata string
}

// publishOp stores messages of one topic and one delivery per subscribed
// consumer group. All or nothing: a failing op makes the writer roll back
// and redo its batch without it.
type publishOp struct {
	topic    string
	msgs     []storedMessage
	register bool // also insert the topic into queue_topics
}

func (op *publishOp) apply(ctx context.Context, w *writeTx) error {
	if op.register {
		if err := registerTopic(ctx, w, op.topic); err != nil {
			return err
		}
	}
	return insertMessages(ctx, w, op.topic, op.msgs)
}

func registerTopic(ctx context.Context, w *writeTx, topic string) error {
	if _, err := w.exec(ctx, `INSERT OR IGNORE INTO queue_topics (topic, created_at) VALUES (?, ?)`, topic, w.now); err != nil {
		return fmt.Errorf("register topic: %w", err)
	}
	return nil
}

// maxInsertRows is the most messages one INSERT statement stores (and
// the most acks one DELETE applies). Chunks are powers of two up to it, so
// that a handful of prepared statements serve every batch size.
const maxInsertRows = 64

// insertMessages stores msgs on topic with one multi-row INSERT per chunk
// of up to maxInsertRows messages, each followed by one INSERT of the
// chunk's deliveries for every group subscribed to topic: two statements
// per chunk instead of two per message, which cost about as much as the
// rows themselves (BenchmarkWriteOps/publish-64: 12.1–12.6 µs per message
// against 14.3–20.6; docs/benchmarks.md).
//
// The deliveries insert finds the chunk's messages by their id range: the
// rows of one INSERT get consecutive ids (AUTOINCREMENT takes the largest
// id ever used plus one, row after row, and nothing else inserts while
// the statement runs), the last of which last_insert_rowid() reports. It
// joins on the messages' topic rather than taking the topic as a
// parameter: SQLite re-prepares a statement whose join compares a column
// with a parameter each time a value is bound to it, which made that
// form cost 16 µs a run against 2.
func insertMessages(ctx context.Context, w *writeTx, topic string, msgs []storedMessage) error {
	for len(msgs) > 0 {
		n := chunkRows(len(msgs))
		for n > 1 && chunkBytes(msgs[:n]) > maxInsertBytes {
			n /= 2 // SQLite copies every bound payload: keep that copy small
		}
		chunk := msgs[:n]
		msgs = msgs[n:]
		args := make([]any, 0, 5*n)
		for _, m := range chunk {
			args = append(args, topic, m.uuid, m.payload, m.metadata, w.now)
		}
		res, err := w.exec(ctx, insertMessagesQuery(n), args...)
		if err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
		res, err = w.exec(ctx, `
			INSERT INTO queue_deliveries (topic, consumer_group, message_id, visible_at)
			SELECT s.topic, s.consumer_group, m.id, ?
			FROM queue_messages m JOIN queue_subscriptions s ON s.topic = m.topic
			WHERE m.id BETWEEN ? AND ?`,
			w.now, last-int64(n)+1, last)
		if err != nil {
			return fmt.Errorf("insert deliveries: %w", err)
		}
		if rows, _ := res.RowsAffected(); rows > 0 {
			w.published = true
		}
	}
	return nil
}

// maxInsertBytes bounds the payloads and metadata one multi-row INSERT
// binds (a single larger message is stored alone): SQLite copies what is
// bound, so 64 messages of a megabyte each would hold 64 MB twice.
const maxInsertBytes = 1 << 20

// chunkBytes is the size of the payloads and metadata of msgs.
func chunkBytes(msgs []storedMessage) int {
	size := 0
	for _, m := range msgs {
		size += len(m.payload) + len(m.metadata)
	}
	return size
}

// chunkRows is how many of n messages the next INSERT stores: the largest
// power of two up to n and maxInsertRows.
func chunkRows(n int) int {
	c := maxInsertRows
	for c > n {
		c /= 2
	}
	return c
}

// insertMessagesQuery is the INSERT statement for rows messages.
func insertMessagesQuery(rows int) string {
	return `INSERT INTO queue_messages (topic, uuid, payload, metadata, created_at) VALUES (?, ?, ?, ?, ?)` +
		strings.Repeat(`, (?, ?, ?, ?, ?)`, rows-1)
}

// subscribeOp registers a consumer group on a topic. A group new to the
// topic receives every message of the topic still stored.
type subscribeOp struct {
	topic, group string
}

func (op *subscribeOp) apply(ctx context.Context, w *writeTx) error {
	{
		if _, err := w.exec(ctx, `INSERT OR IGNORE INTO queue_topics (topic, created_at) VALUES (?, ?)`, op.topic, w.now); err != nil {
			return fmt.Errorf("register topic: %w", err)
		}
		res, err := w.exec(ctx, `INSERT OR IGNORE INTO queue_subscriptions (topic, consumer_group, created_at) VALUES (?, ?, ?)`, op.topic, op.group, w.now)
		if err != nil {
			return fmt.Errorf("register subscription: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		res, err = w.exec(ctx, `
			INSERT OR IGNORE INTO queue_deliveries (topic, consumer_group, message_id, visible_at)
			SELECT topic, ?, id, ? FROM queue_messages WHERE topic = ?`, op.group, w.now, op.topic)
		if err != nil {
			return fmt.Errorf("backfill deliveries: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			w.published = true
		}
		return nil
	}
}

// claimed is one delivery a claim took, with the lease that fences it.
type claimed struct {
	messageID int64
	attempts  int
	leaseID   int64
	// abandoned is set when the previous delivery was abandoned: its
	// lease ran out while in flight (its consumer died or froze).
	abandoned bool
	// soloRuns counts the runs alone abandoned in a row before this
	// delivery (when abandoned).
	soloRuns      int
	firstFailedAt sql.NullInt64
	lastError     sql.NullString
}

// claimOp leases up to limit visible deliveries of a group, oldest first.
//
// Two statements, both walking the primary key: a SELECT finds the
// deliveries, an UPDATE of the message id range they span leases them. In
// the writer's transaction nothing changes in between, and the visible
// deliveries of that range are exactly the ones found (they are the first
// visible ones in message id order). One UPDATE … WHERE message_id IN
// (SELECT …) RETURNING … did the same in one statement, but SQLite builds
// three temporary b-trees for it, each with a page cache of its own: it
// cost 2–5 times as much per claim (BenchmarkWriteOps).
type claimOp struct {
	topic, group string
	limit        int
	leaseMs      int64
	got          []claimed
	// abandoned is set when the subscriber stopped waiting for the claim
	// (it is stopping): the claim then takes nothing, if it has not yet.
	abandoned atomic.Bool
}

func (op *claimOp) apply(ctx context.Context, w *writeTx) error {
	op.got = op.got[:0] // a batch may be applied again after a rollback
	if op.abandoned.Load() {
		return nil
	}
	// "+?", not "?", for the LIMIT and the key: SQLite compiles a
	// statement again whenever its parameters are cleared if its planner
	// looked at one of them (a bare LIMIT parameter, an equality it weighs),
	// and mattn/go-sqlite3 clears them after every run. With "+" the
	// planner does not look; the plan is the same.
	rows, err := w.query(ctx, `
		SELECT message_id, attempts, lease_id, in_flight, solo_runs, first_failed_at, last_error FROM queue_deliveries
		WHERE topic = +? AND consumer_group = +? AND visible_at <= ?
		ORDER BY message_id LIMIT +?`,
		op.topic, op.group, w.now, op.limit)
	if err != nil {
		return fmt.Errorf("claim deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c claimed
		if err := rows.Scan(&c.messageID, &c.attempts, &c.leaseID, &c.abandoned, &c.soloRuns, &c.firstFailedAt, &c.lastError); err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		c.attempts++ // as the UPDATE below sets them
		c.leaseID++
		op.got = append(op.got, c)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("claim deliveries: %w", err)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("claim deliveries: %w", err)
	}
	if len(op.got) == 0 {
		return nil
	}
	res, err := w.exec(ctx, `
		UPDATE queue_deliveries
		SET visible_at = ?, attempts = attempts + 1, lease_id = lease_id + 1, in_flight = 1,
			solo_runs = CASE WHEN in_flight = 1 THEN solo_runs ELSE 0 END
		WHERE topic = ? AND consumer_group = ? AND message_id BETWEEN ? AND ? AND visible_at <= ?`,
		w.now+op.leaseMs, op.topic, op.group, op.got[0].messageID, op.got[len(op.got)-1].messageID, w.now)
	if err != nil {
		return fmt.Errorf("claim deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("claim deliveries: %w", err)
	}
	if n != int64(len(op.got)) {
		// Cannot happen while the writer is the only one writing in its
		// transaction; if it does, roll back rather than hand out leases
		// that do not match the rows.
		return fmt.Errorf("claim deliveries: leased %d rows for the %d found", n, len(op.got))
	}
	return nil
}

// lease names one held delivery.
type lease struct {
	topic, group string
	messageID    int64
	leaseID      int64
}

// ackOp deletes a delivery if the lease is still ours.
type ackOp struct{ lease }

func (op *ackOp) apply(ctx context.Context, w *writeTx) error {
	res, err := w.exec(ctx, `DELETE FROM queue_deliveries WHERE topic = ? AND consumer_group = ? AND message_id = ? AND lease_id = ?`,
		op.topic, op.group, op.messageID, op.leaseID)
	if err == nil {
		w.acked++
	}
	return fenced(res, err, "ack", op.lease)
}

// deleteAcked deletes the deliveries of acks, all of one topic and group,
// with one DELETE per chunk of up to maxInsertRows, each row only if its
// lease is still the one acked. It fails if any lease was lost: the
// caller then applies the acks one by one (ackOp), which says which.
func deleteAcked(ctx context.Context, w *writeTx, acks []lease) error {
	for len(acks) > 0 {
		n := chunkRows(len(acks))
		chunk := acks[:n]
		acks = acks[n:]
		args := make([]any, 0, 2+3*n)
		args = append(args, chunk[0].topic, chunk[0].group)
		for _, l := range chunk {
			args = append(args, l.messageID)
		}
		for _, l := range chunk {
			args = append(args, l.messageID, l.leaseID)
		}
		res, err := w.exec(ctx, deleteAckedQuery(n), args...)
		if err != nil {
			return fmt.Errorf("ack %d deliveries of %s/%s: %w", n, chunk[0].topic, chunk[0].group, err)
		}
		deleted, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("ack %d deliveries of %s/%s: %w", n, chunk[0].topic, chunk[0].group, err)
		}
		w.acked += deleted
		if deleted != int64(n) {
			return fmt.Errorf("ack %d deliveries of %s/%s: %d deleted: %w", n, chunk[0].topic, chunk[0].group, deleted, backend.ErrLeaseLost)
		}
	}
	return nil
}

// deleteAckedQuery is the DELETE of rows acked deliveries: the message ids
// find the rows through the primary key, and the CASE fences each with
// its lease. (A row-value "(message_id, lease_id) IN (VALUES …)" would
// make SQLite scan every delivery of the group.)
func deleteAckedQuery(rows int) string {
	return `DELETE FROM queue_deliveries WHERE topic = ? AND consumer_group = ? AND message_id IN (?` +
		strings.Repeat(`, ?`, rows-1) + `) AND lease_id = CASE message_id` +
		strings.Repeat(` WHEN ? THEN ?`, rows) + ` END`
}

// nackOp makes a delivery visible again after delayMs and records why it
// failed. It ends the lease (a new lease id), so that an extension of it
// already on its way does not push the retry back a whole lease.
type nackOp struct {
	lease
	delayMs   int64
	lastError string
}

func (op *nackOp) apply(ctx context.Context, w *writeTx) error {
	res, err := w.exec(ctx, `
		UPDATE queue_deliveries
		SET visible_at = ?, in_flight = 0, solo_runs = 0, lease_id = lease_id + 1, last_error = ?, first_failed_at = COALESCE(first_failed_at, ?), last_failed_at = ?
		WHERE topic = ? AND consumer_group = ? AND message_id = ? AND lease_id = ?`,
		w.now+op.delayMs, op.lastError, w.now, w.now, op.topic, op.group, op.messageID, op.leaseID)
	if err == nil {
		w.published = true
	}
	return fenced(res, err, "nack", op.lease)
}

// soloRunOp records that a delivery whose previous delivery was abandoned
// is about to run alone in its process, if the lease is still ours. The
// count is what the next delivery reports as abandoned runs, should this
// one be abandoned too; a nack resets it.
type soloRunOp struct {
	lease
	// abandoned is set when the subscriber stopped waiting for the op (it
	// is stopping): the run is then not recorded, if it has not been yet,
	// and skipped says so.
	abandoned atomic.Bool
	skipped   bool
}

func (op *soloRunOp) apply(ctx context.Context, w *writeTx) error {
	op.skipped = op.abandoned.Load()
	if op.skipped {
		return nil
	}
	res, err := w.exec(ctx, `UPDATE queue_deliveries SET solo_runs = solo_runs + 1 WHERE topic = ? AND consumer_group = ? AND message_id = ? AND lease_id = ?`,
		op.topic, op.group, op.messageID, op.leaseID)
	return fenced(res, err, "record solo run of", op.lease)
}

// releaseOp gives back deliveries: visible at once, and not in flight (a
// claim of it later does not take it for abandoned). Like a nack, it ends
// their leases.
//
// With attempts set, the deliveries were never handed to a handler: the
// claim does not count as an attempt, and one whose previous delivery was
// abandoned stays so, with a run alone recorded for it taken back.
// Without, their handlers ran and this consumer stopped waiting for them
// (it is closing): the attempt counts.
type releaseOp struct {
	released []released
	attempts bool
}

// released is one delivery a releaseOp gives back.
type released struct {
	lease
	abandoned    bool // its previous delivery was abandoned
	soloRecorded bool // its run alone was recorded (soloRunOp)
}

// releasedOf lists the leases of ds for a releaseOp.
func releasedOf(ds []delivered) []released {
	out := make([]released, len(ds))
	for i, d := range ds {
		out[i] = released{lease: d.lease, abandoned: d.abandoned, soloRecorded: d.soloRecorded}
	}
	return out
}

// apply is not idempotent (attempts and runs alone are taken back): like
// every op, it is applied again only after its transaction rolled back.
func (op *releaseOp) apply(ctx context.Context, w *writeTx) error {
	for _, r := range op.released {
		var inFlight, attempts, soloRuns int
		if op.attempts {
			attempts = 1
			if r.abandoned {
				inFlight = 1 // as the abandoned delivery left it
			}
			if r.soloRecorded {
				soloRuns = 1
			}
		}
		if _, err := w.exec(ctx, `UPDATE queue_deliveries
			SET visible_at = ?, in_flight = ?, attempts = attempts - ?, solo_runs = solo_runs - ?, lease_id = lease_id + 1
			WHERE topic = ? AND consumer_group = ? AND message_id = ? AND lease_id = ?`,
			w.now, inFlight, attempts, soloRuns, r.topic, r.group, r.messageID, r.leaseID); err != nil {
			return fmt.Errorf("release delivery: %w", err)
		}
	}
	if len(op.released) > 0 {
		w.published = true
	}
	return nil
}

// extendOp pushes the visibility of held deliveries forward. lost lists the
// leases that had already moved on.
type extendOp struct {
	leases  []lease
	leaseMs int64
	lost    []lease
}

func (op *extendOp) apply(ctx context.Context, w *writeTx) error {
	op.lost = op.lost[:0]
	for _, l := range op.leases {
		res, err := w.exec(ctx, `UPDATE queue_deliveries SET visible_at = ? WHERE topic = ? AND consumer_group = ? AND message_id = ? AND lease_id = ?`,
			w.now+op.leaseMs, l.topic, l.group, l.messageID, l.leaseID)
		if err := fenced(res, err, "extend lease", l); err != nil {
			if isLeaseLost(err) {
				op.lost = append(op.lost, l)
				continue
			}
			return err
		}
	}
	return nil
}

func fenced(res sql.Result, err error, what string, l lease) error {
	if err != nil {
		return fmt.Errorf("%s delivery %d of %s/%s: %w", what, l.messageID, l.topic, l.group, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s delivery: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s delivery %d of %s/%s: %w", what, l.messageID, l.topic, l.group, backend.ErrLeaseLost)
	}
	return nil
}

// flushOp changes nothing; being waited for, it makes the writer commit the
// writes it holds back.
type flushOp struct{}

func (flushOp) apply(context.Context, *writeTx) error { return nil }
