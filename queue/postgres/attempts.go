package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/queue/backend"
)

// delivery is one hand-out of a message to a consumer group, as recorded in
// queue_delivery_attempts. attempt fences later writes: a write whose
// attempt no longer matches lost the delivery to a later one.
//
// A handler's ack reaches watermill-sql's offset only when its batch's
// transaction commits, at the end of the batch, and a batch that does not
// commit (its process died, its session ended) is delivered again. So an
// ack is also written to the delivery's row (acked_in: the batch it was
// handed out in, which the row names as claimed_in from the claim on, and
// which fences the write with the attempt), and the row is deleted by the
// batch's offset update (subscriptionOffsets), in the same transaction.
// Until then a delivery of the message in another batch is settled without
// its handler (claimDelivery reports it acked), and the row's count and
// history, which a dead-lettered message's count is, are kept. A delivery
// of the same id in the batch that acked it, or of another publication of
// it (a dead letter's replay keeps the message id; backend.MetadataReplayID
// tells the replays apart), is another message. So a mark left behind by a
// batch that lost its session and never learnt it (see
// subscriber.keepTxAlive) never settles a replay.
type delivery struct {
	topic, group, uuid string
	attempt            int
	// batch is the watermill-sql batch the delivery was handed out in
	// (batchAcks.id): an ack of it names it.
	batch int64
	// acked is set when the claim found the message acked already, in
	// another batch (see above): it is to be acked without being handed
	// out, and the claim counted no attempt.
	acked bool
	// abandoned is set when the previous delivery was abandoned: claimed
	// and never acked, nacked or unclaimed (its consumer died).
	abandoned bool
	// soloRuns counts the runs alone abandoned in a row before this
	// delivery (when abandoned).
	soloRuns int
	// soloRecorded is set once this delivery's run alone is recorded.
	soloRecorded  bool
	firstFailedAt sql.NullTime
	lastError     string
	// retryIn is what is left, at the claim, of the delay the last nack
	// asked for (see failDelivery): the message is handed out after it.
	retryIn time.Duration
}

// claimDelivery counts one more delivery of the message to the group, in
// watermill-sql batch batch, and returns the count with the failure
// history. It commits before the message is handed out, so a consumer that
// crashes while handling still counts. A message acked in another batch
// (see delivery) is not counted: the delivery comes back with acked set.
//
// acked, when not nil, is the subscription's previous delivery, acked by its
// handler since: its row is marked acked by the same statement (fenced by
// its attempt, like ackDelivery), so that a message costs one commit here,
// not two.
//
// replayID is the message's backend.MetadataReplayID ("" but for a replay).
//
// session is the batch's transaction, which holds the group's lock (see
// offsetsAdapter): the claim is made only while it still does, and fails
// with errBatchLost otherwise.
// The claim commits on a connection of its own, so without that a batch
// whose session was cut from outside (a server restart, a proxy's reset)
// would go on claiming and handing out its messages while another consumer
// of the group, the lock now its, reads the same batch and claims them too.
func (b *Backend) claimDelivery(ctx context.Context, topic, group, uuid, replayID string, batch int64, session batchSession, acked *delivery) (delivery, error) {
	d := delivery{topic: topic, group: group, uuid: uuid, batch: batch}
	query, args := claimSQL, []any{topic, group, uuid, b.ownerID(), batch, replayID, session.pid, groupLockKey(topic, group), session.vxid}
	if acked != nil && acked.topic == topic && acked.group == group && acked.uuid != uuid {
		query, args = claimAndMarkSQL, append(args, acked.uuid, acked.attempt, acked.batch)
	} else if acked != nil {
		// Rare (the batch delivered again, the same id published again,
		// or another topic): mark it on its own first.
		if err := b.markAcked(ctx, *acked); err != nil {
			return delivery{}, fmt.Errorf("claim delivery of %s: %w", uuid, err)
		}
	}
	began := time.Now() // a success counts from here (see publisher.Publish)
	var inFlight bool
	var retryIn float64
	err := b.recordsDB.QueryRowContext(ctx, query, args...).Scan(&d.attempt, &d.firstFailedAt, &d.lastError, &d.abandoned, &d.soloRuns, &inFlight, &retryIn)
	if errors.Is(err, sql.ErrNoRows) {
		// The server answered: it takes writes.
		b.health.Succeeded(began)
		return delivery{}, fmt.Errorf("claim delivery of %s: %w", uuid, errBatchLost)
	}
	if err != nil {
		// Every delivery writes here first: a consumer that never
		// publishes learns here that the server refuses writes.
		b.health.FailedIf(time.Now(), err, writeRefused)
		return delivery{}, fmt.Errorf("claim delivery of %s: %w", uuid, err)
	}
	b.health.Succeeded(began)
	d.acked = !inFlight
	d.retryIn = time.Duration(retryIn * float64(time.Second))
	return d, nil
}

// errBatchLost is claimDelivery's error when the batch's transaction no
// longer holds the group's lock (it ended, or its session did).
var errBatchLost = errors.New("the batch's transaction no longer holds the group's lock")

// claimSQL counts a delivery of message $3 (of replay $6, "" for the
// original) to the group by owner $4 in batch $5, which the row names as
// the batch it was claimed in, with the replay, if the batch's
// transaction, virtual id $9 in server process $7, holds the group's lock,
// advisory key $8; else it
// returns no row. The
// previous delivery was abandoned if it was still in flight and its
// owner's lock is free (see ownerLockClass); otherwise the count of runs
// alone starts again. A row of the same publication acked in another
// batch is settled: left as it is but for its batch, now this one; it
// comes back not in flight, which no counted claim does. Any other acked
// row is another message's (see delivery): counted from 1, its history
// forgotten. The last column is the seconds left of the delay the last
// nack asked for (see failDelivery).
const claimSQL = `
	INSERT INTO queue_delivery_attempts AS d
		(topic, consumer_group, message_uuid, attempts, in_flight, delivered_at, owner, claimed_in, replay_id)
	SELECT $1, $2, $3, 1, true, now(), $4, $5, $6
	WHERE EXISTS (
		SELECT 1 FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.pid = $7 AND l.virtualtransaction = $9 AND l.granted
			AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = $8)
	ON CONFLICT (topic, consumer_group, message_uuid) DO UPDATE
	SET attempts = CASE WHEN ` + settled + ` THEN d.attempts WHEN ` + replayed + ` THEN 1 ELSE d.attempts + 1 END,
		in_flight = NOT ` + settled + `,
		delivered_at = CASE WHEN ` + settled + ` THEN d.delivered_at ELSE now() END,
		owner = CASE WHEN ` + settled + ` THEN d.owner ELSE $4 END,
		claimed_in = CASE WHEN ` + settled + ` THEN d.claimed_in ELSE $5 END,
		replay_id = $6,
		acked_in = CASE WHEN ` + settled + ` THEN $5 ELSE 0 END,
		first_failed_at = CASE WHEN ` + replayed + ` THEN NULL ELSE d.first_failed_at END,
		last_failed_at = CASE WHEN ` + replayed + ` THEN NULL ELSE d.last_failed_at END,
		last_error = CASE WHEN ` + replayed + ` THEN '' ELSE d.last_error END,
		retry_at = CASE WHEN ` + replayed + ` THEN NULL ELSE d.retry_at END,
		(abandoned, solo_runs) = (
			SELECT a, CASE WHEN a THEN d.solo_runs ELSE 0 END
			FROM (SELECT ` + previousAbandoned + ` AS a) previous)
	RETURNING attempts, first_failed_at, last_error, abandoned, solo_runs, in_flight,
		COALESCE(GREATEST(EXTRACT(EPOCH FROM retry_at - now()), 0), 0)::float8`

// settled is true, in claimSQL, when the row's delivery was of the same
// publication ($6) and acked in another batch than this one ($5): this
// delivery is settled without a handler. replayed is true for any other
// acked row: this is another message with its id.
const (
	settled  = `(d.acked_in <> 0 AND d.acked_in <> $5 AND d.replay_id = $6)`
	replayed = `(d.acked_in <> 0 AND (d.acked_in = $5 OR d.replay_id <> $6))`
)

// previousAbandoned is true when the row's delivery was abandoned: in
// flight, and its owner's lock free. The lock is tried shared, so that
// claims of several deliveries of one dead owner do not take each other
// for the owner (the owner holds it exclusive), and is let go as the
// claim's transaction ends. The CASE keeps it from being tried for a
// delivery not in flight; it is evaluated once per claim (the sub-select),
// so that the mark and the count agree.
const previousAbandoned = `CASE WHEN d.in_flight
		THEN pg_try_advisory_xact_lock_shared(` + ownerLockClassSQL + `, d.owner) ELSE false END`

// claimAndMarkSQL is claimSQL that also marks the row of message $10
// claimed at attempt $11 in batch $12 acked, as markAckedSQL does, whether
// or not the claim is made (the ack was in time). The two touch different
// rows ($10 <> $3), as a data-modifying CTE must.
const claimAndMarkSQL = `
	WITH marked AS (
		UPDATE queue_delivery_attempts SET acked_in = $12, in_flight = false
		WHERE topic = $1 AND consumer_group = $2 AND message_uuid = $10 AND attempts = $11 AND claimed_in = $12
	)` + claimSQL

// markAckedSQL marks the row of message $3 of the group ($2) on topic ($1)
// claimed at attempt $4 in batch $5 acked in that batch (see delivery): no
// longer in flight. The batch fences it with the attempt: a delivery of the
// same id claimed elsewhere since (a replay, after this one's batch
// committed and deleted its row) may have reached the same attempt.
const markAckedSQL = `
	UPDATE queue_delivery_attempts SET acked_in = $5, in_flight = false
	WHERE topic = $1 AND consumer_group = $2 AND message_uuid = $3 AND attempts = $4 AND claimed_in = $5`

// unclaimDelivery takes back a claim whose message was never handed out
// (the subscriber closed first, or nobody took it before its deadline).
// A delivery whose previous one was abandoned stays so: in flight, and no
// live owner's; a run alone recorded for it is taken back.
func (b *Backend) unclaimDelivery(ctx context.Context, d delivery) error {
	var err error
	if d.abandoned {
		soloRecorded := 0
		if d.soloRecorded {
			soloRecorded = 1
		}
		_, err = b.recordsDB.ExecContext(ctx, `
			UPDATE queue_delivery_attempts
			SET attempts = attempts - 1, in_flight = true, owner = $5, solo_runs = solo_runs - $6
			WHERE topic = $1 AND consumer_group = $2 AND message_uuid = $3 AND attempts = $4`,
			d.topic, d.group, d.uuid, d.attempt, noOwner, soloRecorded)
	} else if d.attempt == 1 {
		_, err = b.recordsDB.ExecContext(ctx, `
			DELETE FROM queue_delivery_attempts
			WHERE topic = $1 AND consumer_group = $2 AND message_uuid = $3 AND attempts = 1`,
			d.topic, d.group, d.uuid)
	} else {
		_, err = b.recordsDB.ExecContext(ctx, `
			UPDATE queue_delivery_attempts SET attempts = attempts - 1, in_flight = false
			WHERE topic = $1 AND consumer_group = $2 AND message_uuid = $3 AND attempts = $4`,
			d.topic, d.group, d.uuid, d.attempt)
	}
	if err != nil {
		return fmt.Errorf("unclaim delivery of %s: %w", d.uuid, err)
	}
	return nil
}

// releaseDelivery records that this consumer let go of a delivery whose
// handler ran, without its outcome (it is closing): the attempt counts,
// and the next claim does not take the delivery for abandoned.
func (b *Backend) releaseDelivery(ctx context.Context, d delivery) error {
	res, err := b.recordsDB.ExecContext(ctx, `
		UPDATE queue_delivery_attempts SET in_flight = false
		WHERE topic = $1 AND consumer_group = $2 AND message_uuid = $3 AND attempts = $4`,
		d.topic, d.group, d.uuid, d.attempt)
	return fenced(res, err, "release delivery", d)
}

// ackDelivery marks the delivery acked (see delivery) at once. It reports
// backend.ErrLeaseLost when a later delivery has been claimed meanwhile.
func (b *Backend) ackDelivery(ctx context.Context, d delivery) error {
	res, err := b.recordsDB.ExecContext(ctx, markAckedSQL, d.topic, d.group, d.uuid, d.attempt, d.batch)
	return fenced(res, err, "ack delivery", d)
}

// markAcked marks acked the row of a delivery whose mark was held back for
// the next claim (see subscriber.deliver). Finding no row is not an error:
// the batch's offset update may have deleted it already.
func (b *Backend) markAcked(ctx context.Context, d delivery) error {
	if err := b.ackDelivery(ctx, d); err != nil && !errors.Is(err, backend.ErrLeaseLost) {
		return err
	}
	return nil
}

// failDelivery records a nack: the error text, the failure times, and
// when the message may be handed out again: after retryDelay, the delay
// the nack asked for (the retry middleware's backoff). The delay is kept
// here, not only by the consumer that nacked, because the group's next
// delivery may be another consumer's (the nacking consumer's batch ends
// when the delay outlasts its ack deadline, freeing the group's lock) or
// come after a restart: whoever claims the message first waits out the
// rest (subscriber.deliver).
func (b *Backend) failDelivery(ctx context.Context, d delivery, lastError string, retryDelay time.Duration) error {
	res, err := b.recordsDB.ExecContext(ctx, `
		UPDATE queue_delivery_attempts
		SET in_flight = false, solo_runs = 0, last_error = $5,
			first_failed_at = COALESCE(first_failed_at, now()), last_failed_at = now(),
			retry_at = now() + $6::bigint * interval '1 microsecond'
		WHERE topic = $1 AND consumer_group = $2 AND message_uuid = $3 AND attempts = $4`,
		d.topic, d.group, d.uuid, d.attempt, lastError, retryDelay.Microseconds())
	return fenced(res, err, "record failed delivery", d)
}

// recordSoloRun records that a delivery whose previous delivery was
// abandoned is about to run alone in its process. The count is what the
// next delivery reports, should this one be abandoned too; a failure
// recorded resets it. It reports backend.ErrLeaseLost when a later
// delivery has been claimed meanwhile.
func (b *Backend) recordSoloRun(ctx context.Context, d delivery) error {
	res, err := b.recordsDB.ExecContext(ctx, `
		UPDATE queue_delivery_attempts SET solo_runs = solo_runs + 1
		WHERE topic = $1 AND consumer_group = $2 AND message_uuid = $3 AND attempts = $4`,
		d.topic, d.group, d.uuid, d.attempt)
	return fenced(res, err, "record solo run", d)
}

func fenced(res sql.Result, err error, what string, d delivery) error {
	if err != nil {
		return fmt.Errorf("%s of %s: %w", what, d.uuid, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s of %s: %w", what, d.uuid, err)
	}
	if n == 0 {
		return fmt.Errorf("%s of %s (attempt %d): %w", what, d.uuid, d.attempt, backend.ErrLeaseLost)
	}
	return nil
}

// formatTime is the metadata form of a time: RFC 3339 with nanoseconds, UTC.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
