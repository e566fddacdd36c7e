package outbox

import (
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

// The late deliveries remembered hold several batches, however large the
// forwarder's batches are, and forget the oldest beyond that.
func TestLateDeliveriesKeepSeveralBatches(t *testing.T) {
	tests := []struct {
		batchSize int
		wantKept  int
	}{
		{batchSize: 16, wantKept: lateDeliveriesKept},
		{batchSize: 10_000, wantKept: lateBatchesKept * 10_000},
	}
	for _, tc := range tests {
		l := newLateDeliveries(tc.batchSize)
		msgs := make([]*message.Message, tc.wantKept+1)
		for i := range msgs {
			msgs[i] = message.NewMessage(fmt.Sprintf("m-%d", i), nil)
		}
		l.add("a", msgs)
		if got := len(l.undelivered("a", msgs[1:])); got != 0 {
			t.Errorf("batch size %d: undelivered of the last %d added: got %d, want 0", tc.batchSize, tc.wantKept, got)
		}
		if got := len(l.undelivered("a", msgs[:1])); got != 1 {
			t.Errorf("batch size %d: undelivered of the first, past %d: got %d, want 1 (forgotten)", tc.batchSize, tc.wantKept, got)
		}
		if got := len(l.undelivered("b", msgs[1:2])); got != 1 {
			t.Errorf("batch size %d: a message taken on topic a, on topic b: got %d undelivered, want 1", tc.batchSize, got)
		}
	}
}
