package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// The ack of a message that ran alone marks its delivery record acked
// before recordAck returns, and so before the other handlers go on: should
// the process die while they run, before watermill-sql's transaction
// commits, the message's redelivery is settled without a handler, not run
// as one more abandoned run alone. Any other ack leaves the mark to the
// next claim. Either way the message goes on the batch's list, whose rows
// the batch's offset update deletes.
func TestTheAckOfARunAloneMarksItsRecordAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b := openFresh(ctx, t, Config{})
	session := holdGroupLock(ctx, t, b)
	tests := []struct {
		abandoned  bool
		wantMarked bool
	}{
		{abandoned: false, wantMarked: false},
		{abandoned: true, wantMarked: true},
	}
	for _, tc := range tests {
		uuid := map[bool]string{false: "shared", true: "alone"}[tc.abandoned]
		t.Run(uuid, func(t *testing.T) {
			d, err := b.claimDelivery(ctx, "jobs", "g", uuid, "", 1, session, nil)
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
			acks := new(batchAcks)
			s.recordAck(ctx, in, d, true, &acked, acks, watermill.NopLogger{})

			var marked, inFlight bool
			if err := b.db.QueryRowContext(ctx, `SELECT acked_in <> 0, in_flight FROM queue_delivery_attempts WHERE message_uuid = $1`, uuid).Scan(&marked, &inFlight); err != nil {
				t.Fatal(err)
			}
			if marked != tc.wantMarked || inFlight == tc.wantMarked {
				t.Errorf("delivery record once the ack is recorded: got acked %v, in flight %v; want acked %v, in flight %v", marked, inFlight, tc.wantMarked, !tc.wantMarked)
			}
			if got := acked != nil; got == tc.wantMarked {
				t.Errorf("delivery left for the next claim to mark: got %v, want %v", got, !tc.wantMarked)
			}
			if got := acks.through(uuid); len(got) != 1 || got[0] != uuid {
				t.Errorf("the batch's acked messages: got %v, want [%s]", got, uuid)
			}
		})
	}
}
