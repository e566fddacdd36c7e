package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/postgres/pgtest"
)

// The ack of a message that ran alone deletes its delivery record before
// recordAck returns, and so before the other handlers go on: should the
// process die while they run, before watermill-sql's transaction commits,
// the message comes back as a fresh delivery, not as one more abandoned
// run alone. Any other ack leaves the record to the next claim.
func TestTheAckOfARunAloneDeletesItsRecordAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b, err := Open(ctx, pgtest.SchemaURL(t, "queue_test"), Config{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	tests := []struct {
		abandoned  bool
		wantRecord bool
	}{
		{abandoned: false, wantRecord: true},
		{abandoned: true, wantRecord: false},
	}
	for _, tc := range tests {
		uuid := map[bool]string{false: "shared", true: "alone"}[tc.abandoned]
		t.Run(uuid, func(t *testing.T) {
			d, err := b.claimDelivery(ctx, "jobs", "g", uuid, nil)
			if err != nil {
				t.Fatal(err)
			}
			d.abandoned = tc.abandoned
			// watermill-sql's message: its context ends once it takes
			// the ack.
			in := message.NewMessage(uuid, nil)
			inCtx, taken := context.WithCancel(ctx)
			in.SetContext(inCtx)
			go func() {
				<-in.Acked()
				taken()
			}()
			s := &subscriber{b: b}
			var acked *delivery
			s.recordAck(ctx, "jobs", in, d, true, &acked, watermill.NopLogger{})

			var n int
			if err := b.db.QueryRowContext(ctx, `SELECT count(*) FROM queue_delivery_attempts WHERE message_uuid = $1`, uuid).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if got := n == 1; got != tc.wantRecord {
				t.Errorf("delivery record left once the ack is recorded: got %v, want %v", got, tc.wantRecord)
			}
			if got := acked != nil; got != tc.wantRecord {
				t.Errorf("delivery left for the next claim to delete: got %v, want %v", got, tc.wantRecord)
			}
		})
	}
}
