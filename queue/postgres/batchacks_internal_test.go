package postgres

import (
	"database/sql"
	"slices"
	"testing"
)

// A batch's bookkeeping takes notes only for the batch in progress: a relay
// slow to see that its message was given up (its batch ended, the next
// began) must not lose, or add to, the next batch.
func TestBatchAcksIgnoreAnEndedBatch(t *testing.T) {
	ended, next := new(sql.Tx), new(sql.Tx)
	var b batchAcks
	b.begin(ended, batchSession{pid: 1, vxid: "3/1"})
	b.add(ended, "m-1")
	b.begin(next, batchSession{pid: 2, vxid: "4/1"})
	b.add(ended, "m-2")
	b.lose(ended)
	if _, _, current := b.of(ended); current {
		t.Error("the ended batch: got current, want not")
	}
	if id, session, current := b.of(next); !current || id == 0 || session.pid != 2 {
		t.Errorf("the next batch: got id %d, session %+v, current %v; want a non-zero id, session of pid 2, current", id, session, current)
	}
	if b.lost(next) {
		t.Error("the next batch: got lost by a note for the ended one")
	}
	if got := b.through("m-2"); len(got) != 0 {
		t.Errorf("acks of the next batch: got %v, want none", got)
	}
}

// The batch's offset update deletes the rows of the messages acked up to
// the one whose offset it stores: an ack noted after it (watermill-sql gave
// that message up as the ack came) is left, its row still marked for the
// message's redelivery.
func TestBatchAcksThroughTheStoredMessage(t *testing.T) {
	tx := new(sql.Tx)
	var b batchAcks
	b.begin(tx, batchSession{pid: 1, vxid: "3/1"})
	for _, id := range []string{"m-1", "m-2", "m-1", "m-3"} {
		b.add(tx, id)
	}
	for _, tc := range []struct {
		last string
		want []string
	}{
		{"m-3", []string{"m-1", "m-2", "m-1", "m-3"}},
		{"m-1", []string{"m-1", "m-2", "m-1"}},
		{"m-2", []string{"m-1", "m-2"}},
		{"m-9", []string{"m-1", "m-2", "m-1", "m-3"}},
	} {
		if got := b.through(tc.last); !slices.Equal(got, tc.want) {
			t.Errorf("through %s: got %v, want %v", tc.last, got, tc.want)
		}
	}
}
