package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/mattn/go-sqlite3"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/sqlite"
)

func deliveries(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM queue_deliveries`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// requireWoken publishes n messages on "jobs", one at a time, and expects
// each next on msgs. With the subscriber's safety nets an hour apart
// (sqlite.WithSafetyNets), a message that arrives was woken for: the
// publish's commit woke the subscriber.
func requireWoken(t *testing.T, pub message.Publisher, msgs <-chan *message.Message, n int) {
	t.Helper()
	for i := range n {
		publishReceiveAck(t, pub, msgs, fmt.Sprintf("m-%d", i))
	}
}

// publishReceiveAck publishes a message with uuid on "jobs" and expects it
// next on msgs.
func publishReceiveAck(t *testing.T, pub message.Publisher, msgs <-chan *message.Message, uuid string) {
	t.Helper()
	if err := pub.Publish("jobs", message.NewMessage(uuid, []byte("x"))); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if m.UUID != uuid {
			t.Fatalf("received %s, want %s", m.UUID, uuid)
		}
		m.Ack()
	case <-time.After(10 * time.Second):
		t.Fatalf("%s not received", uuid)
	}
}

func TestPublishWaitsForAnotherProcesssWriteLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := sqlite.Open(t.Context(), path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sqlite.RequirePublishWaitsFor(t, b, "another connection held the write lock", sqlite.HoldSQLiteLock(t, path))
}

func TestPublishFailsClearlyWhenTheLockIsHeldPastBusyTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := sqlite.Open(t.Context(), path, sqlite.Config{BusyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	release := sqlite.HoldSQLiteLock(t, path)
	defer release()

	err = b.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x")))
	var se sqlite3.Error
	if !errors.As(err, &se) || se.Code != sqlite3.ErrBusy {
		t.Fatalf("Publish while the lock is held: got %v, want a SQLITE_BUSY error", err)
	}
}

// An ack nobody waits for may be held back (AckDelay), but it rides on the
// next commit of the process and is never lost on Close.
func TestHeldBackAcksAreCommittedWithTheNextWriteAndOnClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := sqlite.Open(t.Context(), path, sqlite.Config{AckDelay: time.Hour, Lease: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "workers"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	publishReceiveAck(t, b.Publisher(), msgs, "m-1")
	publishReceiveAck(t, b.Publisher(), msgs, "m-2") // its Publish commits m-1's ack at the latest
	if got := deliveries(t, path); got > 1 {
		t.Fatalf("deliveries after the second publish: got %d, want at most 1 (m-1's ack committed with it)", got)
	}
	cancel()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := deliveries(t, path); got != 0 {
		t.Fatalf("deliveries after Close: got %d, want 0 (held-back acks committed on Close)", got)
	}
}

// subscribeWorkers subscribes group "workers" of b to topic "jobs" until
// the test ends.
func subscribeWorkers(t *testing.T, b *sqlite.Backend) <-chan *message.Message {
	t.Helper()
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "workers"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs, err := sub.Subscribe(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// A second Backend on the file stands in for another process: its commits
// reach this one's subscriber through file change events (the producer's
// writer rings the changes file) or, with PollOnly, through polling — not
// through the safety nets, an hour apart here.
func TestAnotherProcesssCommitWakesTheSubscriber(t *testing.T) {
	for _, pollOnly := range []bool{false, true} {
		name := map[bool]string{false: "file events", true: "polling"}[pollOnly]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			consumer, err := sqlite.Open(t.Context(), path, sqlite.WithSafetyNets(sqlite.Config{PollOnly: pollOnly}, time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			defer consumer.Close()
			producer, err := sqlite.Open(t.Context(), path, sqlite.Config{PollOnly: pollOnly})
			if err != nil {
				t.Fatal(err)
			}
			defer producer.Close()
			requireWoken(t, producer.Publisher(), subscribeWorkers(t, consumer), 20)
		})
	}
}

// SQLite keeps the WAL of a file opened through a symbolic link beside the
// file the link points to. A process that opens the queue through a link
// must watch the changes file beside that file (not one beside the link,
// which no other process rings: its subscribers would wait for the
// one-second safety net), look for that WAL (or the WAL limit and
// background checkpoints would never run) and take turns with the
// processes that opened the file itself on the same lock files.
func TestAQueueOpenedThroughALinkIsWatchedAndLockedBesideItsFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SQLite on Windows does not resolve links: the WAL is beside the link")
	}
	dir := t.TempDir()
	realDir, linkDir := filepath.Join(dir, "data"), filepath.Join(dir, "link")
	for _, d := range []string{realDir, linkDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path, link := filepath.Join(realDir, "queue.db"), filepath.Join(linkDir, "queue.db")
	producer, err := sqlite.Open(t.Context(), path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if err := os.Symlink(path, link); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	// Polling, the watcher would look every 300ms; the safety nets are an
	// hour apart.
	consumer, err := sqlite.Open(t.Context(), link, sqlite.WithSafetyNets(sqlite.Config{PollMin: 300 * time.Millisecond, PollMax: 300 * time.Millisecond}, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	if got, want := sqlite.FileOf(consumer), sqlite.FileOf(producer); got != want {
		t.Errorf("file of the queue opened through the link: got %q, want %q (the producer's)", got, want)
	}
	requireWoken(t, producer.Publisher(), subscribeWorkers(t, consumer), 3)
	for _, suffix := range []string{"-wal", "-writer", "-checkpointer", "-changes"} {
		if _, err := os.Lstat(link + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s beside the link: got err %v, want none there", filepath.Base(link+suffix), err)
		}
	}
}

// A commit of another process that lands after a subscriber began to wait
// but before this process's change watcher first looks must still wake
// the subscriber, not leave it to its safety net (an hour here). (Polling
// only recorded the log's size at its first look, and an event before the
// file watch was in place was lost.)
func TestACommitBeforeTheWatcherFirstLooksWakesTheSubscriber(t *testing.T) {
	for _, pollOnly := range []bool{false, true} {
		name := map[bool]string{false: "file events", true: "polling"}[pollOnly]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			looking, goOn := make(chan struct{}), make(chan struct{})
			var once sync.Once
			letGo := func() { once.Do(func() { close(goOn) }) }
			hold := func() { // the watcher, about to look for the first time
				close(looking)
				<-goOn
			}
			consumer, err := sqlite.Open(t.Context(), path, sqlite.WithBeforeLooking(sqlite.WithSafetyNets(sqlite.Config{PollOnly: pollOnly}, time.Hour), hold))
			if err != nil {
				t.Fatal(err)
			}
			defer consumer.Close()
			defer letGo() // before Close, should the test end early
			msgs := subscribeWorkers(t, consumer)
			producer, err := sqlite.Open(t.Context(), path, sqlite.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer producer.Close()
			select {
			case <-looking:
			case <-time.After(10 * time.Second):
				t.Fatal("the change watcher did not begin to look within 10s of the subscriber's wait")
			}
			if err := producer.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x"))); err != nil {
				t.Fatal(err)
			}
			letGo()
			receive(t, msgs, "m-1").Ack()
		})
	}
}

// A process that only publishes (queuectl, the console) does not look for
// other processes' commits, by file events or by polling: it has nobody
// to wake. Its change watcher begins once one of its subscribers waits.
func TestTheChangeWatcherBeginsWhenASubscriberWaits(t *testing.T) {
	for _, pollOnly := range []bool{false, true} {
		name := map[bool]string{false: "file events", true: "polling"}[pollOnly]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			looking := make(chan struct{})
			b, err := sqlite.Open(t.Context(), path, sqlite.WithBeforeLooking(sqlite.Config{PollOnly: pollOnly}, func() { close(looking) }))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.Publisher().Publish("jobs", message.NewMessage("m-0", []byte("x"))); err != nil {
				t.Fatal(err)
			}
			select {
			case <-looking:
				t.Fatal("a process that only published looks for changes, want it idle")
			case <-time.After(200 * time.Millisecond): // time for a watcher to begin, if it would
			}
			msgs := subscribeWorkers(t, b) // a group registered late gets m-0 too
			receive(t, msgs, "m-0").Ack()
			publishReceiveAck(t, b.Publisher(), msgs, "m-1")
			select {
			case <-looking:
			case <-time.After(10 * time.Second):
				t.Fatal("the change watcher did not begin within 10s of a subscriber's wait")
			}
		})
	}
}
