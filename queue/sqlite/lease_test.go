package sqlite_test

import (
	"database/sql"
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

// A handler whose lease is found lost (another consumer has the message
// now: here, the lease's id is changed behind the subscriber's back, as a
// claim after the lease ran out would) has its message's context ended
// at the next extension, so that it stops rather than finish work whose
// outcome would not count — and, failing, is taken for withdrawn, not
// dead-lettered beside the other consumer's delivery.
func TestALostLeaseEndsTheHandlersContext(t *testing.T) {
	const lease = 300 * time.Millisecond // extended every 100 ms
	path := filepath.Join(t.TempDir(), "queue.db")
	b := openShared(t, path, sqlite.Config{Lease: lease})
	msgs := subscribeWorkers(t, b)
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	m := receive(t, msgs, "m-1")
	defer m.Nack()

	if n := giveOtherLeases(t, path, `WHERE message_id = (SELECT id FROM queue_messages WHERE uuid = 'm-1')`); n != 1 {
		t.Fatalf("deliveries of m-1 given another lease: got %d, want 1", n)
	}
	select {
	case <-m.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context still open 10s after its lease was lost, want it ended at the next extension")
	}
}

// A delivery whose lease is lost while it waits in the subscriber's buffer
// (claimed with another, behind that one's handler) is not handed out:
// the message is another consumer's now. It comes back once that lease
// runs out, as a new attempt.
func TestADeliveryWhoseLeaseIsLostInTheBufferIsNotHandedOut(t *testing.T) {
	const lease = 300 * time.Millisecond
	path := filepath.Join(t.TempDir(), "queue.db")
	b := openShared(t, path, sqlite.Config{Lease: lease})
	// Published before the subscriber claims: one claim takes both, m-1
	// for the handler (concurrency 1) and m-2 for the buffer.
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x")), message.NewMessage("m-2", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	msgs := subscribeWorkers(t, b)
	m1 := receive(t, msgs, "m-1")

	if n := giveOtherLeases(t, path, ""); n != 2 {
		t.Fatalf("deliveries given another lease: got %d, want 2 (m-1's and m-2's, both claimed)", n)
	}
	// Both leases are extended by one op: m-1's context ending says the
	// subscriber has found m-2's lost too.
	select {
	case <-m1.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("m-1's context still open 10s after its lease was lost")
	}
	m1.Ack() // fenced: its lease is gone; frees the handler's slot
	// Both come back once the leases the test gave them run out, m-1
	// first; m-2 never from the buffer.
	for _, uuid := range []string{"m-1", "m-2"} {
		m := receive(t, msgs, uuid)
		if got := m.Metadata.Get(backend.MetadataAttempt); got != "2" {
			t.Errorf("%s handed out at attempt %s, want 2 (again after the lost lease ran out, not from the buffer at 1)", uuid, got)
		}
		m.Ack()
	}
}

// giveOtherLeases changes the lease of the deliveries of the queue file at
// path that where selects (all for ""), from another connection, as a
// claim by another consumer after the leases ran out would; it returns how
// many it changed.
func giveOtherLeases(t *testing.T, path, where string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE queue_deliveries SET lease_id = lease_id + 1000 ` + where)
	if err != nil {
		t.Fatal(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
