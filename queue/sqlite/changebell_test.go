package sqlite_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/fsnotify/fsnotify"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// watchChangesFile reports each change event of b's changes file on the
// returned channel until the test ends.
func watchChangesFile(t *testing.T, b *sqlite.Backend) <-chan fsnotify.Event {
	t.Helper()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	if err := w.Add(sqlite.FileOf(b) + "-changes"); err != nil {
		t.Fatal(err)
	}
	events := make(chan fsnotify.Event, 64)
	go func() {
		for ev := range w.Events {
			events <- ev
		}
	}()
	return events
}

// quietFor is how long a commit that must not ring the changes file is
// watched for an event.
const quietFor = 200 * time.Millisecond

func requireRing(t *testing.T, events <-chan fsnotify.Event, after string) {
	t.Helper()
	select {
	case <-events:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no change event for the changes file, want one (other processes' subscribers would not be woken)", after)
	}
}

func requireQuiet(t *testing.T, events <-chan fsnotify.Event, after string) {
	t.Helper()
	select {
	case ev := <-events:
		t.Fatalf("%s: got change event %v, want none (it would wake every waiting subscriber of every process for nothing)", after, ev)
	case <-time.After(quietFor):
	}
}

func receive(t *testing.T, msgs <-chan *message.Message, uuid string) *message.Message {
	t.Helper()
	select {
	case m := <-msgs:
		if m.UUID != uuid {
			t.Fatalf("received %s, want %s", m.UUID, uuid)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("%s not received", uuid)
		return nil
	}
}

// Commits that make deliveries visible ring the changes file — a publish,
// a nack — and the others do not: a claim or an ack would wake every
// waiting subscriber of every process on the file for nothing.
func TestOnlyCommitsThatMakeDeliveriesVisibleRingTheChangesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := sqlite.Open(t.Context(), path, sqlite.Config{AckDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	msgs := subscribeWorkers(t, b)
	events := watchChangesFile(t, b)

	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	requireRing(t, events, "publish")
	m := receive(t, msgs, "m-1") // claimed and committed before it is handed out
	requireQuiet(t, events, "claim")
	m.Nack()
	requireRing(t, events, "nack")
	m = receive(t, msgs, "m-1")
	requireQuiet(t, events, "second claim")
	m.Ack()
	deadline := time.Now().Add(10 * time.Second)
	for deliveries(t, path) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the ack was not committed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	requireQuiet(t, events, "ack")
}

// Someone removes the changes file while the queue is in use. The
// processes that start afterwards make a new one; the watchers of those
// that were running move to it, and so do their bells, so that every
// process's commits still wake every other's subscribers at once (with the
// watchers' data_version check an hour apart, a subscriber left to its
// own would wait a second).
func TestARemovedChangesFileIsMadeAgainAndEveryProcessMovesToIt(t *testing.T) {
	for _, producerFirst := range []bool{false, true} {
		name := map[bool]string{false: "producer started after the removal", true: "producer running before it"}[producerFirst]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			var producer *sqlite.Backend
			openProducer := func() {
				var err error
				producer, err = sqlite.Open(t.Context(), path, sqlite.Config{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = producer.Close() })
			}
			if producerFirst {
				openProducer()
			}
			consumer, err := sqlite.Open(t.Context(), path, sqlite.WithSafetyNets(sqlite.Config{}, time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			defer consumer.Close()
			msgs := subscribeWorkers(t, consumer)
			awaitWatching(t, consumer) // as the subscriber waits
			if err := os.Remove(sqlite.FileOf(consumer) + "-changes"); err != nil {
				t.Fatal(err)
			}
			if !producerFirst {
				openProducer()
			}
			requireWoken(t, producer.Publisher(), msgs, 3)
		})
	}
}

// A late consumer group's backfill and a subscriber's release of the
// deliveries it claimed but never handed out make deliveries visible too:
// each rings the changes file.
func TestALateGroupsBackfillAndAReleaseRingTheChangesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := sqlite.Open(t.Context(), path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	subscribeWorkers(t, b) // keeps the messages stored for the late group
	events := watchChangesFile(t, b)
	if err := b.Publisher().Publish("jobs",
		message.NewMessage("m-1", []byte("x")), message.NewMessage("m-2", []byte("x")), message.NewMessage("m-3", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	requireRing(t, events, "publish")
	requireQuiet(t, events, "the workers' claim")

	late, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "late"})
	if err != nil {
		t.Fatal(err)
	}
	lateMsgs, err := late.Subscribe(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	requireRing(t, events, "a late group's backfill")
	// Meanwhile the late subscriber claims the three and offers the first
	// on lateMsgs, where nobody takes it.
	requireQuiet(t, events, "the late group's claim")
	if len(lateMsgs) > 0 {
		t.Fatal("the late group's messages were buffered; want them held by the subscriber")
	}
	if err := late.Close(); err != nil {
		t.Fatal(err)
	}
	requireRing(t, events, "the release of the late group's claimed deliveries")
}

// awaitWatching waits until b's change watcher watches the changes file,
// for at most 10s.
func awaitWatching(t *testing.T, b *sqlite.Backend) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !sqlite.Watching(b); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the change watcher does not watch the changes file 10s after a subscriber began to wait")
		}
	}
}
