package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/queue/outbox"
)

// publishCall is one Publish a destination received.
type publishCall struct {
	topic string
	uuids []string
}

// gatedPublisher records each Publish and holds it until release is
// closed; inside counts the calls holding.
type gatedPublisher struct {
	message.Publisher
	mu      sync.Mutex
	calls   []publishCall
	inside  chan struct{}
	release chan struct{}
}

func (p *gatedPublisher) Publish(topic string, msgs ...*message.Message) error {
	call := publishCall{topic: topic}
	for _, m := range msgs {
		call.uuids = append(call.uuids, m.UUID)
	}
	p.mu.Lock()
	p.calls = append(p.calls, call)
	p.mu.Unlock()
	p.inside <- struct{}{}
	<-p.release
	return p.Publisher.Publish(topic, msgs...)
}

// The messages of a forwarding batch reach the destination in one Publish
// per topic, in commit order, all under way at once (so the SQLite queue
// commits them together), and the outbox offset moves only after they are
// published.
func TestBatchIsPublishedTogetherBeforeItsOffsetMoves(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "service.db")
	db := openDB(t, path)
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)

	// Ten messages to two topics, committed before the forwarder starts,
	// so that its first batch (BatchSize 16) holds them all.
	var wantA, wantB []string
	require.NoError(t, inTx(ctx, db, func(tx *sql.Tx) error {
		for i := range 10 {
			topic, id := "a", fmt.Sprintf("m-%02d", i)
			if i%2 == 1 {
				topic = "b"
				wantB = append(wantB, id)
			} else {
				wantA = append(wantA, id)
			}
			if err := ob.Store(ctx, tx, topic, message.NewMessage(id, []byte(`{}`))); err != nil {
				return err
			}
		}
		return nil
	}))

	inner, col := newDestination(t, "a", "b")
	gate := &gatedPublisher{Publisher: inner, inside: make(chan struct{}, 16), release: make(chan struct{})}
	f, _ := startForwarder(t, db, gate, outbox.ForwarderConfig{Outbox: ob})

	for range 2 { // both Publish calls under way before either returns
		select {
		case <-gate.inside:
		case <-time.After(5 * time.Second):
			close(gate.release)
			t.Fatalf("Publish calls under way at once: got %d, want 2", len(gate.calls))
		}
	}
	// The batch is on its way to the destination, not there: its offset
	// has not moved (read through a second connection; WAL lets it read).
	reader := openDB(t, path)
	var acked sql.NullInt64
	err = reader.QueryRow(`SELECT MAX(offset_acked) FROM watermill_offsets_outbox`).Scan(&acked)
	require.NoError(t, err)
	assert.False(t, acked.Valid && acked.Int64 > 0, "offset acked while the batch was being published: got %v, want none", acked)
	close(gate.release)

	col.waitCount(t, 10, 5*time.Second)
	waitPending(t, f, 0, 5*time.Second)
	gate.mu.Lock()
	calls := slices.Clone(gate.calls)
	gate.mu.Unlock()
	slices.SortFunc(calls, func(x, y publishCall) int { return compare(x.topic, y.topic) })
	assert.Equal(t, []publishCall{{"a", wantA}, {"b", wantB}}, calls, "Publish calls: got %v", calls)
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// refusingPublisher refuses every Publish that carries the message with
// id bad, the first refuse times; it counts the Publish calls by size.
type refusingPublisher struct {
	message.Publisher
	bad      string
	refuse   int64
	refusals atomic.Int64
	single   atomic.Int64 // calls with one message
	batched  atomic.Int64 // calls with more
}

func (p *refusingPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		if m.UUID == p.bad && p.refusals.Load() < p.refuse {
			p.refusals.Add(1)
			return errors.New("destination refuses " + m.UUID)
		}
	}
	if len(msgs) == 1 {
		p.single.Add(1)
	} else {
		p.batched.Add(1)
	}
	return p.Publisher.Publish(topic, msgs...)
}

// A batch whose publish fails loses nothing and forwards nothing twice: it
// is rolled back whole and forwarded again message by message, so that a
// message the destination refuses is put back alone while the ones before
// it go through; once a batch goes through, batches are published
// together again.
func TestFailedBatchIsForwardedAgainMessageByMessage(t *testing.T) {
	db, ob := tempOutbox(t)
	want := []string{"m-0", "m-1", "m-2", "m-3", "m-4", "m-5"}
	storeAll(t, db, ob, "a", want...)

	inner, col := newDestination(t, "a")
	dst := &refusingPublisher{Publisher: inner, bad: "m-2", refuse: 2}
	f, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{Outbox: ob, RetryInterval: 20 * time.Millisecond})
	col.waitCount(t, len(want), 5*time.Second)
	waitPending(t, f, 0, 5*time.Second)
	// Refused in its batch, then alone; m-0 and m-1 went one by one.
	assert.Equal(t, int64(2), dst.refusals.Load(), "refusals of m-2")
	assert.GreaterOrEqual(t, dst.single.Load(), int64(2), "Publish calls with one message")

	before := dst.batched.Load()
	more := []string{"n-0", "n-1", "n-2"}
	storeAll(t, db, ob, "a", more...)
	want = append(want, more...)
	col.waitCount(t, len(want), 5*time.Second)
	waitPending(t, f, 0, 5*time.Second)
	time.Sleep(50 * time.Millisecond) // a duplicate would have arrived by now
	got := col.snapshot()
	for _, id := range want {
		assert.Equal(t, 1, got[id], "deliveries of %s", id)
	}
	assert.Len(t, got, len(want))
	assert.Greater(t, dst.batched.Load(), before, "Publish calls with more than one message after the failure")
}

// A message the destination refuses for good does not hold up the ones
// behind it: put back after the rest of its batch, it is tried again once
// per RetryInterval while everything stored before and after it is
// forwarded, each once.
func TestARefusedMessageDoesNotHoldUpTheOthers(t *testing.T) {
	db, ob := tempOutbox(t)
	first := []string{"m-0", "m-1", "m-2", "m-3", "m-4", "m-5"}
	storeAll(t, db, ob, "a", first...)

	inner, col := newDestination(t, "a")
	dst := &refusingPublisher{Publisher: inner, bad: "m-2", refuse: math.MaxInt64}
	f, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{Outbox: ob, RetryInterval: 20 * time.Millisecond})
	more := []string{"n-0", "n-1", "n-2"}
	storeAll(t, db, ob, "a", more...)

	want := append(slices.DeleteFunc(slices.Clone(first), func(id string) bool { return id == "m-2" }), more...)
	col.waitCount(t, len(want), 5*time.Second)
	waitPending(t, f, 1, 5*time.Second) // m-2, still refused
	time.Sleep(50 * time.Millisecond)   // a duplicate would have arrived by now
	got := col.snapshot()
	for _, id := range want {
		assert.Equal(t, 1, got[id], "deliveries of %s", id)
	}
	assert.Len(t, got, len(want))
	tries := dst.refusals.Load()
	assert.GreaterOrEqual(t, tries, int64(2), "refusals of m-2: tried again after its pause")
}

// tempOutbox is a new service database with an outbox.
func tempOutbox(t *testing.T) (*sql.DB, *outbox.Outbox) {
	t.Helper()
	db := tempDB(t)
	ob, err := outbox.New(context.Background(), db, outbox.Config{})
	require.NoError(t, err)
	return db, ob
}

// storeAll commits one message per id to topic in one transaction.
func storeAll(t *testing.T, db *sql.DB, ob *outbox.Outbox, topic string, ids ...string) {
	t.Helper()
	require.NoError(t, inTx(context.Background(), db, func(tx *sql.Tx) error {
		for _, id := range ids {
			if err := ob.Store(context.Background(), tx, topic, message.NewMessage(id, []byte(`{}`))); err != nil {
				return err
			}
		}
		return nil
	}))
}

// envelopedID is the id of the message in an outbox envelope (the
// forwarding handler's middlewares see the envelope).
func envelopedID(t *testing.T, envelope *message.Message) string {
	var e struct {
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal(envelope.Payload, &e); err != nil {
		t.Errorf("not an outbox envelope: %v", err)
	}
	return e.UUID
}

// A forwarding handler that outlives the subscriber's AckDeadline finishes
// while a later batch is in progress; its message (forwarded in a
// transaction that is over) must not take the place of that batch's held
// messages, which would then be lost with the offset moved past them.
func TestLateHandlerDoesNotDropTheNextBatch(t *testing.T) {
	db, ob := tempOutbox(t)
	ids := []string{"m-0", "m-1", "m-2", "m-3", "m-4", "m-5"}
	storeAll(t, db, ob, "a", ids...)

	var slowedM1 atomic.Bool
	delay := func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			switch id := envelopedID(t, msg); {
			case id == "m-1" && slowedM1.CompareAndSwap(false, true):
				// Past AckDeadline: the subscriber commits the batch
				// up to m-0 and starts the next, in which this
				// handler then forwards m-1.
				time.Sleep(150 * time.Millisecond)
			case id == "m-3":
				time.Sleep(80 * time.Millisecond) // the next batch stays open meanwhile
			}
			return h(msg)
		}
	}
	inner, col := newDestination(t, "a")
	f, _ := startForwarder(t, db, inner, outbox.ForwarderConfig{
		Outbox: ob, AckDeadline: 100 * time.Millisecond, RetryInterval: 20 * time.Millisecond,
		Middlewares: []message.HandlerMiddleware{delay},
	})
	waitPending(t, f, 0, 10*time.Second)
	time.Sleep(50 * time.Millisecond) // deliveries are asynchronous in GoChannel
	got := col.snapshot()
	for _, id := range ids {
		assert.GreaterOrEqual(t, got[id], 1, "deliveries of %s", id)
	}
}

// releaseOnce returns a func that closes release the first time it is
// called: called where the test lets a hung destination go, and deferred
// for a test that fails before.
func releaseOnce(release chan struct{}) func() {
	var once sync.Once
	return func() { once.Do(func() { close(release) }) }
}

// hangingPublisher blocks every Publish until release is closed.
type hangingPublisher struct {
	message.Publisher
	release chan struct{}
	calls   atomic.Int64
}

func (p *hangingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.calls.Add(1)
	<-p.release
	return p.Publisher.Publish(topic, msgs...)
}

// A destination that hangs holds the service's write lock (the forwarding
// batch's transaction) for at most AckDeadline: business writes go on.
func TestHungDestinationHoldsTheWriteLockAtMostAckDeadline(t *testing.T) {
	db, ob := tempOutbox(t)
	inner, col := newDestination(t, "order.events")
	dst := &hangingPublisher{Publisher: inner, release: make(chan struct{})}
	f, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{
		Outbox: ob, AckDeadline: 100 * time.Millisecond, RetryInterval: 20 * time.Millisecond,
	})
	release := releaseOnce(dst.release)
	defer release()

	require.NoError(t, placeOrder(context.Background(), db, ob, "o-0"))
	require.Eventually(t, func() bool { return dst.calls.Load() >= 1 }, 5*time.Second, time.Millisecond)
	// The destination hangs until the test releases it: only the ack
	// deadline ends the forwarding batch's hold on the lock.
	requirePlaced(t, db, ob, 1, 6, "the destination hung")

	release()
	waitPending(t, f, 0, 10*time.Second)
	col.waitCount(t, 6, 5*time.Second)
}

// While a destination hangs, the forwarder calls it once (the batch's
// Publish) and not again, in either mode, until that call returns: each
// further call would only hang beside the first (a goroutine and a
// connection each). Nor does it begin a forwarding transaction meanwhile:
// each would take the service's write lock, for another ack deadline (a
// message forwarded alone) or to put its messages back; the service's
// own writes have the lock to themselves.
func TestAHungDestinationIsNotCalledAgainWhileItHangs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "service.db")
	db := openDB(t, path)
	ob, err := outbox.New(context.Background(), db, outbox.Config{})
	require.NoError(t, err)
	inner, col := newDestination(t, "order.events")
	dst := &hangingPublisher{Publisher: inner, release: make(chan struct{})}
	const ackDeadline = 200 * time.Millisecond
	f, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{
		Outbox: ob, AckDeadline: ackDeadline, RetryInterval: 20 * time.Millisecond,
	})
	release := releaseOnce(dst.release)
	defer release()

	requirePlaced(t, db, ob, 0, 3, "the destination is about to hang")
	require.Eventually(t, func() bool { return dst.calls.Load() >= 1 }, 10*time.Second, time.Millisecond, "the batch's Publish")
	time.Sleep(2 * ackDeadline) // the batch is given up, its call hangs on
	offsetWhileHung := lastOffset(t, db)

	// Another connection takes the write lock again and again, waiting at
	// most half an ack deadline for it: a forwarding transaction holding
	// it for an ack deadline would make one of them fail.
	other, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout="+strconv.Itoa(int(ackDeadline.Milliseconds()/2)))
	require.NoError(t, err)
	defer other.Close()
	other.SetMaxOpenConns(1)
	for i := range 40 {
		conn, err := other.Conn(context.Background())
		require.NoError(t, err)
		_, err = conn.ExecContext(context.Background(), "BEGIN IMMEDIATE")
		if err == nil {
			_, err = conn.ExecContext(context.Background(), "ROLLBACK")
		}
		_ = conn.Close()
		if err != nil {
			t.Fatalf("write lock, take %d while the destination hangs: %v (a forwarding transaction holds it)", i, err)
		}
		time.Sleep(ackDeadline / 20)
	}
	if got := dst.calls.Load(); got != 1 {
		t.Errorf("calls of the hung destination: got %d, want 1", got)
	}
	// No forwarding transaction put the messages back either (each such
	// transaction stores them again, under new offsets).
	if got := lastOffset(t, db); got != offsetWhileHung {
		t.Errorf("outbox's last offset while the destination hangs: got %d, then %d; want it unchanged (no forwarding transaction)", offsetWhileHung, got)
	}

	release()
	waitPending(t, f, 0, 10*time.Second)
	col.waitCount(t, 3, 5*time.Second)
}

// lastOffset is the outbox's highest offset: every message stored, or
// put back, takes a new one.
func lastOffset(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var n sql.NullInt64
	require.NoError(t, db.QueryRow(`SELECT MAX("offset") FROM watermill_outbox`).Scan(&n))
	return n.Int64
}

// stickyPublisher fails its first call, hangs its second until release
// is closed, and passes the others on.
type stickyPublisher struct {
	message.Publisher
	release chan struct{}
	calls   atomic.Int64
}

func (p *stickyPublisher) Publish(topic string, msgs ...*message.Message) error {
	switch p.calls.Add(1) {
	case 1:
		return errors.New("queue refused the batch")
	case 2:
		<-p.release
	}
	return p.Publisher.Publish(topic, msgs...)
}

// A call that hangs while a message is forwarded alone (after a failed
// batch) keeps further forwarding transactions from beginning, as a
// batch's call does.
func TestACallHangingInMessageByMessageModeHoldsForwardingBack(t *testing.T) {
	db, ob := tempOutbox(t)
	inner, col := newDestination(t, "order.events")
	dst := &stickyPublisher{Publisher: inner, release: make(chan struct{})}
	f, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{
		Outbox: ob, AckDeadline: 100 * time.Millisecond, RetryInterval: 20 * time.Millisecond,
	})
	release := releaseOnce(dst.release)
	defer release()

	requirePlaced(t, db, ob, 0, 3, "the destination is about to fail, then hang")
	require.Eventually(t, func() bool { return dst.calls.Load() >= 2 }, 10*time.Second, time.Millisecond, "the failed batch, then a message alone")
	time.Sleep(300 * time.Millisecond) // its ack deadline passes; the call hangs on
	before := lastOffset(t, db)
	time.Sleep(500 * time.Millisecond)
	if got := dst.calls.Load(); got != 2 {
		t.Errorf("calls of the destination: got %d, want 2 (the failed batch, the hung message)", got)
	}
	if got := lastOffset(t, db); got != before {
		t.Errorf("outbox's last offset while the call hangs: got %d, then %d; want it unchanged", before, got)
	}

	release()
	waitPending(t, f, 0, 10*time.Second)
	col.waitCount(t, 3, 5*time.Second)
}

// A call that never returns (a connection cut without a reset) holds
// forwarding back for ten ack deadlines, not for ever: then a new call is
// tried beside it, and the destination, answering new calls, gets every
// message.
func TestACallThatNeverReturnsIsGivenUpOn(t *testing.T) {
	db, ob := tempOutbox(t)
	inner, col := newDestination(t, "order.events")
	dst := &firstHangsPublisher{Publisher: inner, release: make(chan struct{})}
	defer close(dst.release) // only when the test ends
	f, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{
		Outbox: ob, AckDeadline: 50 * time.Millisecond, RetryInterval: 20 * time.Millisecond,
	})

	requirePlaced(t, db, ob, 0, 3, "the destination's first call is about to hang for good")
	waitPending(t, f, 0, 10*time.Second)
	col.waitCount(t, 3, 5*time.Second)
}

// firstHangsPublisher hangs its first call until release is closed and
// passes the others on.
type firstHangsPublisher struct {
	message.Publisher
	release chan struct{}
	calls   atomic.Int64
}

func (p *firstHangsPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.calls.Add(1) == 1 {
		<-p.release
	}
	return p.Publisher.Publish(topic, msgs...)
}

// panickingPublisher panics on its first calls, then works.
type panickingPublisher struct {
	message.Publisher
	panics atomic.Int64
}

func (p *panickingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.panics.Add(1) <= 2 {
		panic("destination bug")
	}
	return p.Publisher.Publish(topic, msgs...)
}

// A destination that panics fails its batch like an error: the process
// goes on and the messages are forwarded once it works.
func TestPanickingDestinationFailsTheBatch(t *testing.T) {
	db, ob := tempOutbox(t)
	ids := []string{"m-0", "m-1", "m-2"}
	storeAll(t, db, ob, "a", ids...)
	inner, col := newDestination(t, "a")
	f, _ := startForwarder(t, db, &panickingPublisher{Publisher: inner}, outbox.ForwarderConfig{
		Outbox: ob, RetryInterval: 20 * time.Millisecond,
	})
	waitPending(t, f, 0, 10*time.Second)
	col.waitCount(t, len(ids), 5*time.Second)
	got := col.snapshot()
	for _, id := range ids {
		assert.GreaterOrEqual(t, got[id], 1, "deliveries of %s", id)
	}
}

// lateStickyPublisher fails its first call when failFirst is set, then
// takes every message after delay: longer than the forwarder's ack
// deadline, so each call ends after the forwarder stopped waiting for it.
type lateStickyPublisher struct {
	message.Publisher
	delay     time.Duration
	failFirst bool
	calls     atomic.Int64
}

func (p *lateStickyPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.calls.Add(1) == 1 && p.failFirst {
		return errors.New("queue refused the batch")
	}
	time.Sleep(p.delay)
	return p.Publisher.Publish(topic, msgs...)
}

// A destination that takes every message, each time after the ack
// deadline, is not sent the same messages for ever: what it took after
// the forwarder stopped waiting is not sent again, so the outbox drains
// and each message arrives once. Batch mode (the batch's Publish is given
// up at the deadline) and message-by-message mode (the subscriber gives up
// on the message) both.
func TestMessagesTakenAfterTheAckDeadlineAreNotSentAgain(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failFirst bool // the first batch fails: message by message from then on
	}{
		{name: "batch", failFirst: false},
		{name: "message by message", failFirst: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, ob := tempOutbox(t)
			ids := []string{"m-0", "m-1", "m-2", "m-3"}
			storeAll(t, db, ob, "a", ids...)
			inner, col := newDestination(t, "a")
			const ackDeadline = 50 * time.Millisecond
			dst := &lateStickyPublisher{Publisher: inner, delay: 3 * ackDeadline, failFirst: tc.failFirst}
			f, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{
				Outbox: ob, AckDeadline: ackDeadline, RetryInterval: 20 * time.Millisecond,
			})
			waitPending(t, f, 0, 10*time.Second)
			col.waitCount(t, len(ids), 5*time.Second)
			time.Sleep(5 * ackDeadline) // a call made before the outbox drained ends by now
			got := col.snapshot()
			for _, id := range ids {
				if got[id] != 1 {
					t.Errorf("deliveries of %s: got %d, want 1", id, got[id])
				}
			}
		})
	}
}

// topicRefusingPublisher refuses its first call for topic bad.
type topicRefusingPublisher struct {
	message.Publisher
	bad     string
	refused atomic.Bool
}

func (p *topicRefusingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if topic == p.bad && p.refused.CompareAndSwap(false, true) {
		return errors.New("destination refuses topic " + topic)
	}
	return p.Publisher.Publish(topic, msgs...)
}

// When one topic of a batch fails, the batch is rolled back and forwarded
// again; the messages of the topics the destination took are not sent
// again.
func TestATopicRefusedInABatchDoesNotResendTheOthers(t *testing.T) {
	db, ob := tempOutbox(t)
	require.NoError(t, inTx(context.Background(), db, func(tx *sql.Tx) error {
		for _, m := range []struct{ topic, id string }{{"a", "a-0"}, {"b", "b-0"}, {"a", "a-1"}, {"b", "b-1"}} {
			if err := ob.Store(context.Background(), tx, m.topic, message.NewMessage(m.id, []byte(`{}`))); err != nil {
				return err
			}
		}
		return nil
	}))
	inner, col := newDestination(t, "a", "b")
	dst := &topicRefusingPublisher{Publisher: inner, bad: "b"}
	f, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{Outbox: ob, RetryInterval: 20 * time.Millisecond})
	waitPending(t, f, 0, 10*time.Second)
	col.waitCount(t, 4, 5*time.Second)
	time.Sleep(50 * time.Millisecond) // a duplicate would have arrived by now
	got := col.snapshot()
	for _, id := range []string{"a-0", "a-1", "b-0", "b-1"} {
		if got[id] != 1 {
			t.Errorf("deliveries of %s: got %d, want 1", id, got[id])
		}
	}
	if !dst.refused.Load() {
		t.Error("the destination never refused topic b: the test did not fail a batch")
	}
}
