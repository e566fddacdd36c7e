package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// A handler that runs for longer than the lease keeps its message: while it
// runs, its subscriber extends the lease (every Lease/3), so the other
// consumer of the group, in another Backend on the same file, does not get
// the message, and it is delivered once, at attempt 1.
func TestAHandlerLongerThanTheLeaseKeepsItsMessage(t *testing.T) {
	// Long enough that a writer slowed down by a loaded machine (-race,
	// parallel packages) still extends in time: every 333 ms, with 667 ms
	// to spare.
	const lease = time.Second
	path := filepath.Join(t.TempDir(), "queue.db")
	open := func() *sqlite.Backend { return openShared(t, path, sqlite.Config{Lease: lease}) }
	subscribe := func(b *sqlite.Backend) <-chan *message.Message { return subscribeWorkers(t, b) }
	first, second := open(), open()
	firstMsgs, secondMsgs := subscribe(first), subscribe(second)
	if err := first.Publisher().Publish("jobs", message.NewMessage(watermill.NewUUID(), []byte("slow"))); err != nil {
		t.Fatalf("publish: %v", err)
	}

	var held *message.Message
	var holder *sqlite.Backend
	var others <-chan *message.Message
	select {
	case held = <-firstMsgs:
		holder, others = first, secondMsgs
	case held = <-secondMsgs:
		holder, others = second, firstMsgs
	case <-time.After(5 * time.Second):
		t.Fatal("no consumer received the message within 5s")
	}
	// The handler "runs" for two leases.
	select {
	case m := <-others:
		t.Fatalf("the other consumer got the message (attempt %s) while the first handler still ran: its lease was not extended",
			m.Metadata.Get(backend.MetadataAttempt))
	case <-time.After(2 * lease):
	}
	if got := held.Metadata.Get(backend.MetadataAttempt); got != "1" {
		t.Errorf("attempt: got %q, want 1", got)
	}
	if got := holder.WriteStats().Operations[sqlite.OpExtend]; got == 0 {
		t.Errorf("lease extensions committed by the holder: got 0, want some")
	}
	held.Ack()
	// Acked under its extended lease: the delivery is gone, for both.
	select {
	case m := <-firstMsgs:
		t.Fatalf("delivered again after the ack (attempt %s)", m.Metadata.Get(backend.MetadataAttempt))
	case m := <-secondMsgs:
		t.Fatalf("delivered again after the ack (attempt %s)", m.Metadata.Get(backend.MetadataAttempt))
	case <-time.After(lease):
	}
}
