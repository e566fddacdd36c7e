package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
)

// A subscription whose batch's session is cut from outside (here
// pg_terminate_backend; a proxy's reset or a server restart would do the
// same) while a handler runs hands out nothing more of that batch: another
// consumer of the group has taken the group's lock and its messages, and
// the two must not handle the same message at once. It finds out at its
// next claim, which the session's hold on the group's lock fences, whether
// the handler acks at once or after the batch has been idle long enough
// for a no-op statement.
func TestALostBatchHandsOutNothingMore(t *testing.T) {
	for _, tc := range []struct {
		name       string
		handleTime time.Duration
	}{
		{name: "acked at once", handleTime: 0},
		{name: "acked after a no-op statement is due", handleTime: 1200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) { testALostBatchHandsOutNothingMore(t, tc.handleTime) })
	}
}

func testALostBatchHandsOutNothingMore(t *testing.T, handleTime time.Duration) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// A no-op statement before a message when the batch has been idle
	// for AckDeadline/4: 1s. The deadline leaves the second consumer's
	// handler (below) seconds to spare on a loaded machine.
	b := openFresh(ctx, t, Config{AckDeadline: 4 * time.Second})
	if err := b.ensureTopic(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", nil), message.NewMessage("m-2", nil)); err != nil {
		t.Fatal(err)
	}

	_, first := subscribeJobs(ctx, t, b)
	m1 := nextMessage(t, first, "the first consumer")
	var ended int
	if err := b.db.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 1 AND granted
			AND ((classid::bigint << 32) | objid::bigint) = $1`, groupLockKey("jobs", "g")).Scan(&ended); err != nil || ended != 1 {
		t.Fatalf("end the session holding the group's lock: ended %d, %v; want 1", ended, err)
	}
	_, second := subscribeJobs(ctx, t, b)
	again := nextMessage(t, second, "the second consumer") // the group is its now
	if again.UUID != "m-1" {
		t.Fatalf("the second consumer's first message: got %s, want m-1", again.UUID)
	}

	// Both handlers within AckDeadline.
	time.Sleep(handleTime)
	m1.Ack()
	select {
	case m := <-first:
		t.Errorf("the first consumer handed out %s (attempt %s) from its lost batch while the second has the group",
			m.UUID, m.Metadata.Get(backend.MetadataAttempt))
	case <-time.After(300 * time.Millisecond):
	}
	again.Ack()
	if m2 := nextMessage(t, second, "the second consumer"); m2.UUID != "m-2" {
		t.Errorf("the second consumer's next message: got %s, want m-2", m2.UUID)
	} else {
		m2.Ack()
	}
}

// A claim is fenced on the batch's transaction, not only on its session:
// once the batch's transaction has ended, its claims fail even while a
// later transaction on the same pooled connection (same server process)
// holds the group's lock, as the next batch of the group may.
func TestAClaimOfAnEndedBatchFailsWhileItsConnectionHoldsTheLockAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b := openFresh(ctx, t, Config{})
	conn, err := b.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	ended, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	endedSession := lockGroupIn(ctx, t, ended)
	if err := ended.Rollback(); err != nil {
		t.Fatal(err)
	}
	next, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = next.Rollback() }()
	nextSession := lockGroupIn(ctx, t, next)
	if nextSession.pid != endedSession.pid {
		t.Fatalf("two transactions on one connection: got server processes %d and %d, want one", endedSession.pid, nextSession.pid)
	}

	if _, err := b.claimDelivery(ctx, "jobs", "g", "m-1", "", 1, endedSession, nil); !errors.Is(err, errBatchLost) {
		t.Errorf("claim in the ended batch: got %v, want %v", err, errBatchLost)
	}
	if _, err := b.claimDelivery(ctx, "jobs", "g", "m-1", "", 2, nextSession, nil); err != nil {
		t.Errorf("claim in the batch holding the lock: got %v, want it made", err)
	}
}
