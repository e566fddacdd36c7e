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
// its id): a delivery to handle.
func TestAnAckOnTheRowSettlesDeliveriesInOtherBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b := openFresh(ctx, t, Config{})
	claim := func(batch int64, want string) delivery {
		t.Helper()
		d, err := b.claimDelivery(ctx, "jobs", "g", "m-1", batch, nil)
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
	if replay := claim(5, "to handle"); replay.attempt != first.attempt+1 {
		t.Errorf("attempt of another delivery in the settling batch: got %d, want %d", replay.attempt, first.attempt+1)
	}

	second := claim(7, "to handle")
	if err := b.ackDelivery(ctx, second); err != nil {
		t.Fatal(err)
	}
	if replay := claim(7, "to handle"); replay.attempt != second.attempt+1 {
		t.Errorf("attempt of another delivery in the acking batch: got %d, want %d", replay.attempt, second.attempt+1)
	}
}
