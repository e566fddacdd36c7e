package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
)

// groupLockSetting is the transaction-local setting through which a
// subscription transaction tells NextOffsetQuery whether it holds its
// group's lock.
const groupLockSetting = "orderflow_queue.group_locked"

// offsetsAdapter is watermill-sql's DefaultPostgreSQLOffsetsAdapter (same
// tables, same ack and before-subscribing queries) with another way of
// making the consumers of a group take turns.
//
// The default adapter locks the group's offset row with SELECT … FOR UPDATE
// in a REPEATABLE READ transaction that stays open while the batch is
// handled. Two problems were measured with it:
//
//   - A row lock gives the transaction an id. watermill-sql reads only
//     messages below pg_snapshot_xmin, so while one handler ran, every
//     message published after its batch began was hidden from every consumer
//     of every topic on the server (TestSlowHandlerDoesNotStallOtherTopics).
//   - Competing consumers of a group waited inside the query, holding a
//     connection, and could not be stopped without cancelling it: closing
//     one subscriber waited for another's batch, up to the ack deadline.
//
// Instead, gatedDB.BeginTx opens a READ COMMITTED transaction and tries a
// transaction-level advisory lock on (topic, group) — which takes no
// transaction id — and records the outcome in groupLockSetting.
// NextOffsetQuery returns the offset only to the lock holder, so a consumer
// that finds its group busy reads no messages, ends its transaction and
// polls again. Because the lock is taken in an earlier statement than the
// one that reads the offset, that read sees the previous holder's committed
// offset. The transaction gets an id only when the batch's offset is stored,
// just before it commits.
type offsetsAdapter struct {
	wsql.DefaultPostgreSQLOffsetsAdapter
}

// NextOffsetQuery reads the group's offset if this transaction holds the
// group's lock, and nothing otherwise.
func (a offsetsAdapter) NextOffsetQuery(topic, consumerGroup string) wsql.Query {
	return wsql.Query{
		Query: `
			SELECT offset_acked, last_processed_transaction_id
			FROM ` + a.MessagesOffsetsTable(topic) + `
			WHERE consumer_group = $1
				AND current_setting('` + groupLockSetting + `', true) = 'on'`,
		Args: []any{consumerGroup},
	}
}

// subscriptionOffsets is one subscription's offsetsAdapter: its batch's
// offset update also deletes the delivery rows of the messages acked in the
// batch (acks), in the same transaction, so that the rows keep an ack (see
// delivery) exactly as long as the offset does not.
type subscriptionOffsets struct {
	offsetsAdapter
	acks *batchAcks
}

// AckMessageQuery stores the batch's offset, as watermill-sql's default
// does, and deletes the delivery rows of the batch's acked messages. The
// delete needs no attempt fence: only the holder of the group's lock
// claims the group's deliveries, and this transaction holds it. Arguments
// $1 to $3 are the default's (offset, transaction id, group).
func (a subscriptionOffsets) AckMessageQuery(topic string, row wsql.Row, consumerGroup string) wsql.Query {
	q := a.DefaultPostgreSQLOffsetsAdapter.AckMessageQuery(topic, row, consumerGroup)
	q.Query = `
		WITH forgotten AS (
			DELETE FROM queue_delivery_attempts
			WHERE topic = $4 AND consumer_group = $3 AND message_uuid = ANY($5::text[])
		)` + q.Query
	q.Args = append(q.Args, topic, a.acks.through(row.Msg.UUID))
	return q
}

// batchAcks is a subscription's batch in progress: its transaction, a
// random id, which its deliveries' rows name when claimed and acked (see
// delivery), and the ids of the messages acked in it, in the order they
// were, added by the relay before each ack reaches watermill-sql and read
// by the batch's offset update. gatedDB.BeginTx starts the next. Each
// method takes the transaction of the message at hand and does nothing
// for one that is no longer the batch in progress: a relay that was slow
// to see that watermill-sql gave its message up must not touch the next
// batch. A batch that does not commit leaves its messages' rows marked
// acked, for their redelivery.
type batchAcks struct {
	mu    sync.Mutex
	tx    *sql.Tx
	batch int64
	acked []string
	gone  bool // the batch's transaction is gone (see subscriber.deliver)
	// session is the batch's transaction, which holds the group's lock
	// (Backend.claimDelivery).
	session batchSession
}

// batchSession names the transaction of a batch, which holds its group's
// lock: its server process (pid) and its virtual transaction id (vxid,
// pg_locks.virtualtransaction). A claim is fenced on both: the process
// alone would let the claim of an ended batch pass while a later
// transaction on the same pooled connection holds the lock again.
type batchSession struct {
	pid  int32
	vxid string
}

// begin starts the batch of transaction tx, which is session: a new id,
// nothing acked.
func (b *batchAcks) begin(tx *sql.Tx, session batchSession) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tx, b.acked, b.gone, b.session = tx, b.acked[:0], false, session
	b.batch = rand.Int64() | 1 // never 0, which marks a row not acked
}

// of returns the id and the session of the batch of tx, and false when tx
// is not the batch in progress (its message was given up).
func (b *batchAcks) of(tx *sql.Tx) (batch int64, session batchSession, current bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.batch, b.session, tx != nil && tx == b.tx
}

// add notes an ack of message uuid in the batch of tx.
func (b *batchAcks) add(tx *sql.Tx, uuid string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if tx == b.tx {
		b.acked = append(b.acked, uuid)
	}
}

// lose notes that the transaction of the batch of tx is gone; lost
// reports it.
func (b *batchAcks) lose(tx *sql.Tx) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if tx == b.tx {
		b.gone = true
	}
}

func (b *batchAcks) lost(tx *sql.Tx) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return tx == b.tx && b.gone
}

// through returns the messages acked in the batch up to and including the
// last ack of uuid, the message whose offset the batch stores: an ack
// noted after it (watermill-sql gave that message up as its ack came) is
// not the batch's. With no ack of uuid noted, all of them.
func (b *batchAcks) through(uuid string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.acked) - 1; i >= 0; i-- {
		if b.acked[i] == uuid {
			return slices.Clone(b.acked[:i+1])
		}
	}
	return slices.Clone(b.acked)
}

// groupLockKey is the advisory lock key of one topic's consumer group.
// Advisory locks belong to a database, not a schema, so queues in two
// schemas of one database make their same-named groups of a same-named
// topic take turns (slower, never wrong). The key stays what every version
// has used: consumers of one group from two versions, side by side during
// a rolling upgrade, must take turns on one lock, or both would handle the
// same batch (a schema in the key did that, outside public). A hash
// collision only makes two groups take turns.
func groupLockKey(topic, group string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("orderflow.queue\x00" + topic + "\x00" + group))
	return int64(h.Sum64())
}

// gatedDB is the database handle given to one subscription's watermill-sql
// subscriber. Its BeginTx waits for the relay's gate (see deliver), then
// starts a READ COMMITTED transaction and tries the group's lock (see
// offsetsAdapter).
type gatedDB struct {
	*sql.DB
	gate    *gate
	stop    <-chan struct{}
	lockKey int64
	busy    *atomic.Bool // whether the last BeginTx found the group locked
	acks    *batchAcks   // of the batch the transaction is for
}

func (g gatedDB) BeginTx(ctx context.Context, _ *sql.TxOptions) (*sql.Tx, error) {
	if err := g.gate.wait(ctx, g.stop); err != nil {
		return nil, fmt.Errorf("wait for handler: %w", err)
	}
	tx, err := g.DB.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	var locked string
	var session batchSession
	err = tx.QueryRowContext(ctx, `SELECT set_config('`+groupLockSetting+`',
		CASE WHEN pg_try_advisory_xact_lock($1) THEN 'on' ELSE 'off' END, true), pg_backend_pid(),
		(SELECT virtualtransaction FROM pg_locks WHERE locktype = 'virtualxid' AND pid = pg_backend_pid() AND granted)`,
		g.lockKey).Scan(&locked, &session.pid, &session.vxid)
	if err != nil {
		_ = tx.Rollback()
		return nil, fmt.Errorf("try group lock: %w", err)
	}
	g.busy.Store(locked != "on")
	g.gate.touched()
	g.acks.begin(tx, session)
	return tx, nil
}
