package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// A handler that runs past the ack deadline holds its subscription's next
// batch back (one message in flight per subscription): with one consumer
// in the group, the group waits. That is said in the log, once, naming the
// message, rather than leave a stalled group silent.
func TestAHandlerPastTheAckDeadlineIsLogged(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	logs := watermill.NewCaptureLogger()
	b := openFresh(ctx, t, Config{AckDeadline: 300 * time.Millisecond, Logger: logs})
	if err := b.ensureTopic(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", nil)); err != nil {
		t.Fatal(err)
	}
	_, ch := subscribeJobs(ctx, t, b)
	m := nextMessage(t, ch, "the consumer")

	logged := func() int {
		n := 0
		for _, levelMsgs := range logs.Captured() {
			for _, c := range levelMsgs {
				if strings.Contains(c.Msg, "past the ack deadline") && c.Fields["message_uuid"] == "m-1" {
					n++
				}
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for logged() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(400 * time.Millisecond) // more than another ack deadline
	if got := logged(); got != 1 {
		t.Errorf("log lines about m-1's handler running past the ack deadline: got %d, want 1", got)
	}
	m.Ack()
}
