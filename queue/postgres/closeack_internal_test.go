package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
)

// An ack the relay holds for its next claim is written when the relay
// ends, so that a batch whose commit does not come (here Close gives up on
// an offset update that waits for a lock) settles the message's
// redelivery instead of running it again.
func TestAHeldAckIsWrittenWhenTheRelayEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := Config{CloseTimeout: 500 * time.Millisecond}
	b := openFresh(ctx, t, cfg)
	if err := b.ensureTopic(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", nil)); err != nil {
		t.Fatal(err)
	}
	first, ch := subscribeJobs(ctx, t, b)
	m1 := nextMessage(t, ch, "the first consumer")

	// Hold the group's offset row: the batch's offset update waits.
	lock, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback() }()
	if _, err := lock.ExecContext(ctx, `SELECT 1 FROM `+b.offsets.MessagesOffsetsTable("jobs")+` WHERE consumer_group = 'g' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	m1.Ack()
	if err := first.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}

	if err := b.Publisher().Publish("jobs", message.NewMessage("m-2", nil)); err != nil {
		t.Fatal(err)
	}
	_, again := subscribeJobs(ctx, t, b)
	if m := nextMessage(t, again, "the second consumer"); m.UUID != "m-2" {
		t.Errorf("after the batch that acked m-1 failed to commit: got %s (attempt %s) handed out, want m-1 settled and m-2 next",
			m.UUID, m.Metadata.Get(backend.MetadataAttempt))
	}
}
