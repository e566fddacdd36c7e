package postgres

import (
	"context"
	"strings"
	"sync"
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
	logs := &hungLog{LoggerAdapter: watermill.NopLogger{}, counts: &hungCounts{}}
	b := openFresh(ctx, t, Config{AckDeadline: 300 * time.Millisecond, Logger: logs})
	if err := b.ensureTopic(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", nil)); err != nil {
		t.Fatal(err)
	}
	_, ch := subscribeJobs(ctx, t, b)
	m := nextMessage(t, ch, "the consumer")

	logged := logs.counts.get
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

// hungLog counts the errors logged about m-1's handler running past the
// ack deadline.
type hungLog struct {
	watermill.LoggerAdapter
	fields watermill.LogFields
	counts *hungCounts
}

type hungCounts struct {
	mu sync.Mutex
	n  int
}

func (c *hungCounts) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (l *hungLog) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return &hungLog{LoggerAdapter: l.LoggerAdapter, fields: l.fields.Copy().Add(fields), counts: l.counts}
}

func (l *hungLog) Error(msg string, err error, fields watermill.LogFields) {
	if strings.Contains(msg, "past the ack deadline") && l.fields.Copy().Add(fields)["message_uuid"] == "m-1" {
		l.counts.mu.Lock()
		l.counts.n++
		l.counts.mu.Unlock()
	}
}
