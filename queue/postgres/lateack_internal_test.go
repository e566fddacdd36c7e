package postgres

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
)

// A late ack settles the redelivery of its own message, and not a replay
// of that message (which keeps its id): the redelivery may have gone to
// another consumer of the group, and the replay, coming here later, would
// be acked without being handled, its dead letter deleted by the replay.
func TestALateAckSettlesItsRedeliveryNotAReplay(t *testing.T) {
	msg := func(replayFor string) *message.Message {
		m := message.NewMessage("m-1", []byte("x"))
		if replayFor != "" {
			m.Metadata.Set(backend.MetadataReplayForGroup, replayFor)
		}
		return m
	}
	tests := []struct {
		name             string
		acked, delivered string // replay_for_group of each; "" for none
		want             bool
	}{
		{"the redelivery", "", "", true},
		{"a replay of the message", "", "billing", false},
		{"the redelivery of a replay", "billing", "billing", true},
		{"the original after a replay's late ack", "billing", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &subscriber{lateAcks: map[string]time.Time{}}
			s.addLateAck("payments", msg(tc.acked))
			if got := s.takeLateAck("payments", msg(tc.delivered)); got != tc.want {
				t.Errorf("settled by the late ack: got %v, want %v", got, tc.want)
			}
			if s.takeLateAck("other", msg(tc.acked)) {
				t.Error("a late ack settled the same id on another topic")
			}
		})
	}
}
