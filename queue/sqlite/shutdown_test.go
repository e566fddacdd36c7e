package sqlite_test

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/backend/backendtest"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// stopTest is one consumer group on a fresh file, with messages published
// before anyone subscribes.
type stopTest struct {
	t    *testing.T
	path string
	b    *sqlite.Backend
}

func newStopTest(t *testing.T, uuids ...string) *stopTest {
	st := &stopTest{t: t, path: filepath.Join(t.TempDir(), "queue.db")}
	st.b = st.open()
	sub := st.subscriber()
	if err := sub.(message.SubscribeInitializer).SubscribeInitialize("jobs"); err != nil {
		t.Fatalf("subscribe initialize: %v", err)
	}
	_ = sub.Close()
	var msgs []*message.Message
	for _, id := range uuids {
		msgs = append(msgs, message.NewMessage(id, nil))
	}
	if err := st.b.Publisher().Publish("jobs", msgs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
	return st
}

func (st *stopTest) open() *sqlite.Backend {
	b, err := sqlite.Open(context.Background(), st.path, sqlite.Config{})
	if err != nil {
		st.t.Fatalf("open: %v", err)
	}
	st.t.Cleanup(func() { _ = b.Close() })
	return b
}

func (st *stopTest) subscriber() message.Subscriber {
	sub, err := st.b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "workers", Concurrency: 1})
	if err != nil {
		st.t.Fatalf("subscriber: %v", err)
	}
	st.t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func (st *stopTest) subscribe(ctx context.Context, sub message.Subscriber) <-chan *message.Message {
	ch, err := sub.Subscribe(ctx, "jobs")
	if err != nil {
		st.t.Fatalf("subscribe: %v", err)
	}
	return ch
}

// handOutThenEnd subscribes a first consumer, takes m1 from it and ends
// the subscription's context: the channel must close without handing out
// more, while m1's context stays live. It returns the subscriber, not yet
// closed, and m1, not yet acked.
func (st *stopTest) handOutThenEnd() (message.Subscriber, *message.Message) {
	t := st.t
	t.Helper()
	first := st.subscriber()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := st.subscribe(ctx, first)
	running := receiveWithin(t, ch, 15*time.Second, "the first consumer")
	expectDelivery(t, running, "m1", "1")

	cancel()
	backendtest.ExpectClosed(t, ch)
	if err := running.Context().Err(); err != nil {
		t.Errorf("the handed-out message's context ended with the subscription's: %v", err)
	}
	return first, running
}

func expectDelivery(t *testing.T, m *message.Message, uuid, attempt string) {
	t.Helper()
	if m.UUID != uuid || m.Metadata.Get(backend.MetadataAttempt) != attempt {
		t.Fatalf("got %s at attempt %s, want %s at attempt %s", m.UUID, m.Metadata.Get(backend.MetadataAttempt), uuid, attempt)
	}
}

// TestSubscribeContextEndLetsHandedOutMessagesFinish: when a Subscribe
// context ends, the subscription hands out nothing more and releases what
// it claimed but had not handed out, while a message being handled keeps a
// live context and lease, and its ack is recorded.
func TestSubscribeContextEndLetsHandedOutMessagesFinish(t *testing.T) {
	st := newStopTest(t, "m1", "m2", "m3")
	first, running := st.handOutThenEnd()

	// The first consumer claimed m2 with m1 (one slot, one more to start
	// next) and released it when its context ended, uncounted; m1 stays
	// leased while its handler runs. The release is written after the
	// channel closes, so the second consumer may claim m3 before m2 is
	// back: both come, in either order, each at its first attempt.
	second := st.subscriber()
	ch2 := st.subscribe(context.Background(), second)
	got := map[string]string{}
	m := receiveWithin(t, ch2, 15*time.Second, "the second consumer")
	got[m.UUID] = m.Metadata.Get(backend.MetadataAttempt)
	m.Ack()

	running.Ack()
	if err := first.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	m = receiveWithin(t, ch2, 15*time.Second, "the second consumer")
	got[m.UUID] = m.Metadata.Get(backend.MetadataAttempt)
	m.Ack()
	if want := map[string]string{"m2": "1", "m3": "1"}; !maps.Equal(got, want) {
		t.Errorf("the second consumer's deliveries (id: attempt): got %v, want %v", got, want)
	}
	if err := second.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := st.b.Close(); err != nil { // commits the acks
		t.Fatalf("close backend: %v", err)
	}

	// m1's ack was recorded: nothing is left for the group.
	st.b = st.open()
	stats, err := st.b.Inspector().Stats(context.Background())
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	for _, ts := range stats {
		for _, g := range ts.Groups {
			if g.ConsumerGroup == "workers" && g.Depth != 0 {
				t.Errorf("group depth %d after every message was acked, want 0", g.Depth)
			}
		}
	}
}

// TestCloseGivesUpHandedOutMessages: Close after the context ended cancels
// the context of a message still being handled and releases it; it comes
// back with this attempt counted.
func TestCloseGivesUpHandedOutMessages(t *testing.T) {
	st := newStopTest(t, "m1")
	first, running := st.handOutThenEnd()
	if err := first.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := running.Context().Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("after Close, the handed-out message's context: %v, want cancelled", err)
	}
	running.Ack() // too late: not recorded

	ch2 := st.subscribe(context.Background(), st.subscriber())
	m := receiveWithin(t, ch2, 15*time.Second, "the next consumer")
	expectDelivery(t, m, "m1", "2")
	m.Ack()
}

// A subscriber closed while it subscribes (a process told to stop while its
// router starts) neither panics nor leaves a subscription running.
func TestSubscribeRacingClose(t *testing.T) {
	st := newStopTest(t)
	backendtest.SubscribeRacingClose(t, 300, st.subscriber, "jobs")
}
