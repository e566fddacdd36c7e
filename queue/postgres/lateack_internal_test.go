package postgres

import (
	"context"
	"testing"
	"time"
)

// An ack written to a delivery's row (a late ack, the ack of a run alone,
// an ack held for the next claim) settles the message's deliveries in
// other batches (the batch did not commit; the message comes back), here
// or at another consumer of the group: the claim reports it acked and
// counts no attempt. A delivery of the same id in the batch that settled
// it, or that acked it, is another message (a dead letter's replay keeps
// its id): a delivery to handle, counted from 1.
func TestAnAckOnTheRowSettlesDeliveriesInOtherBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b := openFresh(ctx, t, Config{})
	session := holdGroupLock(ctx, t, b)
	claim := func(batch int64, want string) delivery {
		t.Helper()
		d, err := b.claimDelivery(ctx, "jobs", "g", "m-1", "", batch, session, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := map[bool]string{true: "acked", false: "to handle"}[d.acked]; got != want {
			t.Errorf("claim: got %s (attempt %d), want %s", got, d.attempt, want)
		}
		return d
	}
	first := claim(1, "to handle")
	if err := b.ackDelivery(ctx, first); err != nil {
		t.Fatal(err)
	}
	for _, batch := range []int64{3, 5} { // batches that did not commit
		if settled := claim(batch, "acked"); settled.attempt != first.attempt {
			t.Errorf("attempt of the delivery settled in batch %d: got %d, want %d (not counted)", batch, settled.attempt, first.attempt)
		}
	}
	if replay := claim(5, "to handle"); replay.attempt != 1 {
		t.Errorf("attempt of another delivery in the settling batch: got %d, want 1", replay.attempt)
	}

	second := claim(7, "to handle")
	if err := b.ackDelivery(ctx, second); err != nil {
		t.Fatal(err)
	}
	if replay := claim(7, "to handle"); replay.attempt != 1 {
		t.Errorf("attempt of another delivery in the acking batch: got %d, want 1", replay.attempt)
	}
}

// The ack of a delivery marks only that delivery: held for the next claim
// while its batch committed (and deleted its row), it does not mark a
// delivery of the same id claimed since, in another batch (a replay, at
// the same attempt), which would then be settled unhandled.
func TestAHeldAckDoesNotMarkALaterDeliveryOfTheSameID(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b := openFresh(ctx, t, Config{})
	session := holdGroupLock(ctx, t, b)
	held, err := b.claimDelivery(ctx, "jobs", "g", "m-1", "", 1, session, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Batch 1 commits: its offset update deletes the row.
	if _, err := b.db.ExecContext(ctx, `DELETE FROM queue_delivery_attempts WHERE message_uuid = 'm-1'`); err != nil {
		t.Fatal(err)
	}
	replay, err := b.claimDelivery(ctx, "jobs", "g", "m-1", "", 2, session, nil)
	if err != nil {
		t.Fatal(err)
	}
	if replay.attempt != held.attempt {
		t.Fatalf("the replay's attempt: got %d, want %d (the same, for the fence to be tested)", replay.attempt, held.attempt)
	}
	for name, mark := range map[string]func() error{
		"on its own":     func() error { return b.markAcked(ctx, held) },
		"with the claim": func() error { _, err := b.claimDelivery(ctx, "jobs", "g", "m-2", "", 2, session, &held); return err },
	} {
		if err := mark(); err != nil {
			t.Fatalf("mark %s: %v", name, err)
		}
		var ackedIn int64
		if err := b.db.QueryRowContext(ctx, `SELECT acked_in FROM queue_delivery_attempts WHERE message_uuid = 'm-1'`).Scan(&ackedIn); err != nil {
			t.Fatal(err)
		}
		if ackedIn != 0 {
			t.Errorf("the replay's row after the held ack was written %s: got acked in batch %d, want not acked", name, ackedIn)
		}
	}
}

// A mark left on a row (by a batch that lost its session without noticing,
// handed the message out, acked it and never committed) settles only a
// redelivery of the same publication: a dead letter's replay of the
// message, with a replay id of its own, is handled, counted from 1.
func TestALeftMarkDoesNotSettleAReplay(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b := openFresh(ctx, t, Config{})
	session := holdGroupLock(ctx, t, b)
	for _, tc := range []struct{ acked, replay string }{{"", "r-1"}, {"r-1", "r-2"}, {"r-1", ""}} {
		uuid := "m-" + tc.acked + "-" + tc.replay
		d, err := b.claimDelivery(ctx, "jobs", "g", uuid, tc.acked, 1, session, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.ackDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		r, err := b.claimDelivery(ctx, "jobs", "g", uuid, tc.replay, 2, session, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.acked || r.attempt != 1 {
			t.Errorf("publication %q of a message whose publication %q was acked: got settled %v at attempt %d, want handled at attempt 1",
				tc.replay, tc.acked, r.acked, r.attempt)
		}
	}
}
