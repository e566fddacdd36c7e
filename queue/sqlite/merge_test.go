package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
)

// storedRow is a message as the queue file holds it, with the groups that
// have a delivery of it.
type storedRow struct {
	topic, uuid, payload string
	groups               string // comma-separated, sorted
}

// storedRows reads every message of the file in id order.
func storedRows(t *testing.T, b *Backend) []storedRow {
	t.Helper()
	rows, err := b.readDB.QueryContext(t.Context(), `
		SELECT m.topic, m.uuid, m.payload,
			COALESCE((SELECT group_concat(consumer_group, ',') FROM
				(SELECT consumer_group FROM queue_deliveries d WHERE d.message_id = m.id ORDER BY consumer_group)), '')
		FROM queue_messages m ORDER BY m.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []storedRow
	for rows.Next() {
		var r storedRow
		if err := rows.Scan(&r.topic, &r.uuid, &r.payload, &r.groups); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// openQueueFile opens a new queue file for the test, closed at its end.
func openQueueFile(t *testing.T) (b *Backend, path string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "queue.db")
	// No garbage collection between a test's commits and its counts.
	b, err := Open(t.Context(), path, Config{GCInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, path
}

func subscribeGroups(t *testing.T, b *Backend, topic string, groups ...string) {
	t.Helper()
	for _, g := range groups {
		if err := b.submit(&subscribeOp{topic: topic, group: g}, true); err != nil {
			t.Fatal(err)
		}
	}
}

// A Publish of many messages is stored in multi-row INSERTs of up to
// maxInsertRows rows: every message, in order, with one delivery for each
// subscribed group, whatever the count's split into chunks.
func TestAPublishOfManyMessagesStoresEachWithADeliveryPerGroup(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, maxInsertRows - 1, maxInsertRows, maxInsertRows + 1, 2*maxInsertRows + 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b, _ := openQueueFile(t)
			subscribeGroups(t, b, "jobs", "g1", "g2")
			subscribeGroups(t, b, "other", "g3")
			// A message of another topic before, so that ids do not start
			// at 1 and the topic's deliveries must come from the right range.
			if err := b.Publisher().Publish("other", message.NewMessage("before", []byte("o"))); err != nil {
				t.Fatal(err)
			}
			var msgs []*message.Message
			want := []storedRow{{topic: "other", uuid: "before", payload: "o", groups: "g3"}}
			for i := range n {
				msgs = append(msgs, message.NewMessage(fmt.Sprintf("m-%d", i), []byte(fmt.Sprintf("payload %d", i))))
				want = append(want, storedRow{topic: "jobs", uuid: fmt.Sprintf("m-%d", i), payload: fmt.Sprintf("payload %d", i), groups: "g1,g2"})
			}
			if err := b.Publisher().Publish("jobs", msgs...); err != nil {
				t.Fatal(err)
			}
			if got := storedRows(t, b); !slices.Equal(got, want) {
				t.Errorf("stored after a Publish of %d messages:\ngot  %v\nwant %v", n, got, want)
			}
		})
	}
}

// Messages whose payloads together exceed maxInsertBytes are stored in
// smaller INSERTs, one alone if it is that large, all in order.
func TestLargeMessagesAreStoredInSmallerInserts(t *testing.T) {
	b, _ := openQueueFile(t)
	subscribeGroups(t, b, "jobs", "g1")
	sizes := []int{maxInsertBytes + 1, 10, maxInsertBytes / 3, maxInsertBytes / 3, maxInsertBytes / 3, 20, 30}
	var msgs []*message.Message
	var want []storedRow
	for i, size := range sizes {
		payload := strings.Repeat(string(rune('a'+i)), size)
		msgs = append(msgs, message.NewMessage(fmt.Sprintf("m-%d", i), []byte(payload)))
		want = append(want, storedRow{topic: "jobs", uuid: fmt.Sprintf("m-%d", i), payload: payload, groups: "g1"})
	}
	if err := b.Publisher().Publish("jobs", msgs...); err != nil {
		t.Fatal(err)
	}
	got := storedRows(t, b)
	if len(got) != len(want) {
		t.Fatalf("stored %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d: got %s of %d bytes for groups %q, want %s of %d bytes for %q",
				i, got[i].uuid, len(got[i].payload), got[i].groups, want[i].uuid, len(want[i].payload), want[i].groups)
		}
	}
}

// awaitQueued waits until b's writer has been handed n requests in all
// (writeCounters.queued). A test that makes requests one by one and waits
// for each so has them queued in that order.
func awaitQueued(t *testing.T, b *Backend, n int64) {
	t.Helper()
	waitFor(t, func() bool { return b.writeCounts.queued.Load() == n }, fmt.Sprintf("%d requests handed to the writer", n))
}

// awaitWriterBlocked waits until b's writer has found SQLite's lock taken
// by another connection more than before times: it holds what it took
// from its queue, and what is queued from now on joins its transaction
// once the lock is granted.
func awaitWriterBlocked(t *testing.T, b *Backend, before int64) {
	t.Helper()
	waitFor(t, func() bool { return b.writeCounts.busyBegins.Load() > before }, "the writer kept out of SQLite's lock")
}

// failingOp is an op that fails without touching the file.
type failingOp struct{}

func (failingOp) apply(context.Context, *writeTx) error { return errors.New("simulated failure") }

// Publishes that share a transaction are stored together (applyMerged),
// each Publish's messages in its order and the Publishes of a topic in the
// order they were made, with their deliveries. An op that fails among them
// fails alone, and the publishes are committed without it.
func TestPublishesSharingATransactionAreStoredTogether(t *testing.T) {
	t.Run("all succeed", func(t *testing.T) { testPublishesSharingATransaction(t, false) })
	t.Run("another op fails", func(t *testing.T) { testPublishesSharingATransaction(t, true) })
}

func testPublishesSharingATransaction(t *testing.T, withFailingOp bool) {
	b, path := openQueueFile(t)
	subscribeGroups(t, b, "jobs", "g1")
	subscribeGroups(t, b, "other", "g2")
	// The requests queue while another connection holds SQLite's lock, so
	// that they share one transaction.
	release := holdSQLiteLock(t, path)
	queued := b.writeCounts.queued.Load()
	type call struct {
		topic string
		uuids []string
	}
	calls := []call{
		{"jobs", []string{"a-1", "a-2", "a-3"}},
		{"other", []string{"o-1"}},
		{"jobs", []string{"b-1"}},
		{"jobs", []string{"c-1", "c-2"}},
	}
	answers := make([]chan error, len(calls))
	for i, c := range calls {
		answers[i] = make(chan error, 1)
		var msgs []*message.Message
		for _, u := range c.uuids {
			msgs = append(msgs, message.NewMessage(u, []byte(u)))
		}
		go func() { answers[i] <- b.Publisher().Publish(c.topic, msgs...) }()
		queued++
		awaitQueued(t, b, queued) // in this order in the batch
		if i == 1 && withFailingOp {
			failed := make(chan error, 1)
			go func() { failed <- b.submit(failingOp{}, true) }()
			defer func() {
				if err := <-failed; err == nil || !strings.Contains(err.Error(), "simulated") {
					t.Errorf("the failing op: got %v, want its own error", err)
				}
			}()
			queued++
			awaitQueued(t, b, queued)
		}
	}
	release()
	for i, ch := range answers {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("Publish %v: got %v, want nil", calls[i].uuids, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Publish %v: no answer within 30s", calls[i].uuids)
		}
	}
	got := storedRows(t, b)
	byTopic := map[string][]string{}
	for _, r := range got {
		if want := map[string]string{"jobs": "g1", "other": "g2"}[r.topic]; r.groups != want || r.payload != r.uuid {
			t.Errorf("message %s of %s: got groups %q and payload %q, want %q and %q", r.uuid, r.topic, r.groups, r.payload, want, r.uuid)
		}
		byTopic[r.topic] = append(byTopic[r.topic], r.uuid)
	}
	if want := []string{"a-1", "a-2", "a-3", "b-1", "c-1", "c-2"}; !slices.Equal(byTopic["jobs"], want) {
		t.Errorf("messages of jobs in id order: got %v, want %v", byTopic["jobs"], want)
	}
	if want := []string{"o-1"}; !slices.Equal(byTopic["other"], want) {
		t.Errorf("messages of other: got %v, want %v", byTopic["other"], want)
	}
	// Two subscriptions and the shared transaction (tried a second time
	// without the failing op).
	if got := b.WriteStats().Transactions; got != 3 {
		t.Errorf("write transactions: got %d, want 3 (the publishes shared one)", got)
	}
}

// A group that subscribes in the same transaction as publishes to its
// topic gets a delivery of each of them, wherever its subscription stands
// among them.
func TestAGroupSubscribingAmongMergedPublishesGetsEveryMessage(t *testing.T) {
	b, path := openQueueFile(t)
	subscribeGroups(t, b, "jobs", "g1")
	release := holdSQLiteLock(t, path)
	queued := b.writeCounts.queued.Load()
	var answers []chan error
	publish := func(uuid string) {
		ch := make(chan error, 1)
		answers = append(answers, ch)
		go func() { ch <- b.Publisher().Publish("jobs", message.NewMessage(uuid, []byte(uuid))) }()
		queued++
		awaitQueued(t, b, queued)
	}
	publish("m-1")
	subscribed := make(chan error, 1)
	go func() { subscribed <- b.submit(&subscribeOp{topic: "jobs", group: "late"}, true) }()
	queued++
	awaitQueued(t, b, queued)
	publish("m-2")
	before := b.WriteStats().Transactions
	release()
	for _, ch := range append(answers, subscribed) {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	want := []storedRow{
		{topic: "jobs", uuid: "m-1", payload: "m-1", groups: "g1,late"},
		{topic: "jobs", uuid: "m-2", payload: "m-2", groups: "g1,late"},
	}
	if got := storedRows(t, b); !slices.Equal(got, want) {
		t.Errorf("stored:\ngot  %v\nwant %v", got, want)
	}
	if got := b.WriteStats().Transactions - before; got != 1 {
		t.Errorf("write transactions of the publishes and the subscription: got %d, want 1", got)
	}
}

// Acks of one group that share a transaction are applied together
// (deleteAcked), each only with the lease it names: an ack whose lease
// was lost fails alone with backend.ErrLeaseLost and leaves its delivery,
// the others delete theirs.
func TestAcksSharingATransactionAreFencedOneByOne(t *testing.T) {
	b, path := openQueueFile(t)
	subscribeGroups(t, b, "jobs", "g1")
	var msgs []*message.Message
	for i := range 5 {
		msgs = append(msgs, message.NewMessage(fmt.Sprintf("m-%d", i), []byte("x")))
	}
	if err := b.Publisher().Publish("jobs", msgs...); err != nil {
		t.Fatal(err)
	}
	claim := &claimOp{topic: "jobs", group: "g1", limit: 5, leaseMs: 60_000}
	if err := b.submit(claim, true); err != nil {
		t.Fatal(err)
	}
	if len(claim.got) != 5 {
		t.Fatalf("claimed %d deliveries, want 5", len(claim.got))
	}
	const stale = 2 // its ack names a lease older than the claim's
	release := holdSQLiteLock(t, path)
	queued := b.writeCounts.queued.Load()
	answers := make([]chan error, len(claim.got))
	for i, c := range claim.got {
		l := lease{topic: "jobs", group: "g1", messageID: c.messageID, leaseID: c.leaseID}
		if i == stale {
			l.leaseID--
		}
		answers[i] = make(chan error, 1)
		go func() { answers[i] <- b.submit(&ackOp{l}, true) }()
		queued++
		awaitQueued(t, b, queued)
	}
	before := b.WriteStats()
	release()
	for i, ch := range answers {
		err := <-ch
		if i == stale {
			if !errors.Is(err, backend.ErrLeaseLost) {
				t.Errorf("ack with a lost lease: got %v, want ErrLeaseLost", err)
			}
		} else if err != nil {
			t.Errorf("ack %d: got %v, want nil", i, err)
		}
	}
	want := []storedRow{}
	for i, m := range msgs {
		r := storedRow{topic: "jobs", uuid: m.UUID, payload: "x"}
		if i == stale {
			r.groups = "g1"
		}
		want = append(want, r)
	}
	if got := storedRows(t, b); !slices.Equal(got, want) {
		t.Errorf("deliveries left:\ngot  %v\nwant %v", got, want)
	}
	after := b.WriteStats()
	if got, want := after.Transactions-before.Transactions, int64(1); got != want {
		t.Errorf("write transactions of the acks: got %d, want %d (they shared one)", got, want)
	}
	if got, want := after.Operations[OpAck]-before.Operations[OpAck], int64(len(claim.got)-1); got != want {
		t.Errorf("acks committed: got %d, want %d (all but the one with the lost lease)", got, want)
	}
}

// Acks of a whole claim in one transaction, more than one DELETE's worth,
// delete every delivery.
func TestManyAcksInOneTransactionDeleteEveryDelivery(t *testing.T) {
	b, _ := openQueueFile(t)
	subscribeGroups(t, b, "jobs", "g1", "g2")
	const n = 2*maxInsertRows + 3
	var msgs []*message.Message
	for i := range n {
		msgs = append(msgs, message.NewMessage(fmt.Sprintf("m-%d", i), []byte("x")))
	}
	if err := b.Publisher().Publish("jobs", msgs...); err != nil {
		t.Fatal(err)
	}
	claim := &claimOp{topic: "jobs", group: "g1", limit: n, leaseMs: 60_000}
	if err := b.submit(claim, true); err != nil {
		t.Fatal(err)
	}
	for _, c := range claim.got { // held back (AckDelay), then committed together
		if err := b.submit(&ackOp{lease{topic: "jobs", group: "g1", messageID: c.messageID, leaseID: c.leaseID}}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.submit(flushOp{}, true); err != nil {
		t.Fatal(err)
	}
	for _, r := range storedRows(t, b) {
		if r.groups != "g2" {
			t.Fatalf("message %s: deliveries of groups %q left, want g2's alone", r.uuid, r.groups)
		}
	}
	if got := b.WriteStats().Operations[OpAck]; got != n {
		t.Errorf("acks committed: got %d, want %d", got, n)
	}
}
