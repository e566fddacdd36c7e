package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/backend/backendtest"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// A message whose previous delivery was abandoned (handed out, and its
// lease ran out with no outcome: its consumer died) runs alone among the
// handlers of its backend, whatever their topic: it is handed out only
// once the handler running has its outcome, and nothing is handed out
// beside it until it has its own. Its run is recorded before it starts
// (and reported on the next abandoned delivery); a nack resets the count.
func TestAnAbandonedMessageRunsAloneAndItsRunIsRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b := openShared(t, path, sqlite.Config{})
	registerWorkers(t, b, "jobs", "others")
	jobs, others := newWorkers(t, b, 4), newWorkers(t, b, 4)
	publish := func(topic, uuid string) { publishOne(t, b, topic, uuid) }
	publish("others", "o-1")
	publish("jobs", "a-1")
	publish("jobs", "n-1")
	db := openFile(t, path)
	markAbandoned(t, db, "a-1")
	if g := workersStats(t, b, "jobs"); g.Abandoned != 1 || g.InFlight != 0 {
		t.Errorf("stats of the group with a-1 abandoned: got abandoned %d, in flight %d; want 1, 0", g.Abandoned, g.InFlight)
	}

	otherMsgs, err := others.Subscribe(t.Context(), "others")
	if err != nil {
		t.Fatal(err)
	}
	o1 := receive(t, otherMsgs, "o-1")
	jobMsgs, err := jobs.Subscribe(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	expectNothing(t, jobMsgs, "while o-1's handler runs")
	o1.Ack()

	a1 := receive(t, jobMsgs, "a-1")
	backendtest.ExpectAbandonedRuns(t, a1, "2", "")
	if g := workersStats(t, b, "jobs"); g.Abandoned != 0 || g.InFlight < 1 {
		t.Errorf("stats of the group while a-1 runs alone: got abandoned %d, in flight %d; want 0, at least 1", g.Abandoned, g.InFlight)
	}
	if got, want := a1.Metadata.Get(backend.MetadataAttempt), "4"; got != want {
		t.Errorf("a-1's attempt: got %q, want %q", got, want)
	}
	if got, want := soloRuns(t, db, "a-1"), 3; got != want {
		t.Errorf("a-1's runs alone recorded once handed out: got %d, want %d", got, want)
	}
	publish("others", "o-2")
	expectNothing(t, jobMsgs, "while a-1 runs alone")
	expectNothing(t, otherMsgs, "while a-1 runs alone")

	delay.Message(a1, delay.For(time.Hour)) // out of the way once nacked
	a1.Nack()
	if got := receive(t, jobMsgs, "n-1"); got.Metadata.Get(backend.MetadataAbandoned) != "" {
		t.Errorf("n-1's abandoned runs: got %q, want none (its delivery was never abandoned)", got.Metadata.Get(backend.MetadataAbandoned))
	}
	receive(t, otherMsgs, "o-2")
	if got, want := soloRuns(t, db, "a-1"), 0; got != want {
		t.Errorf("a-1's runs alone after a nack: got %d, want %d (a failure is an outcome)", got, want)
	}
}

// A queue file made before deliveries counted their runs alone gets the
// column when it is opened, and works on.
func TestAFileWithoutTheSoloRunsColumnGetsIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := sqlite.Open(t.Context(), path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	db := openFile(t, path)
	if _, err := db.Exec(`ALTER TABLE queue_deliveries DROP COLUMN solo_runs`); err != nil {
		t.Fatal(err)
	}

	b = openShared(t, path, sqlite.Config{})
	msgs := subscribeWorkers(t, b)
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	receive(t, msgs, "m-1").Ack()
	if got, want := soloRuns(t, db, ""), 0; got != want {
		t.Errorf("solo_runs of the old file's deliveries: got %d, want %d", got, want)
	}
}

// expectNothing checks that nothing arrives on msgs for a while. (It cannot
// prove that nothing ever would; what it catches, it catches for sure.)
func expectNothing(t *testing.T, msgs <-chan *message.Message, when string) {
	t.Helper()
	select {
	case m := <-msgs:
		t.Fatalf("%s handed out %s, want nothing", when, m.UUID)
	case <-time.After(300 * time.Millisecond):
	}
}

func openFile(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// soloRuns is the sum of solo_runs over the deliveries of the message
// uuid (of every message for "").
func soloRuns(t *testing.T, db *sql.DB, uuid string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT coalesce(sum(solo_runs), 0) FROM queue_deliveries
		WHERE ? = '' OR message_id = (SELECT id FROM queue_messages WHERE uuid = ?)`, uuid, uuid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A message whose previous delivery was abandoned, claimed and then given
// back before it ran (its subscriber stopped while it waited to run
// alone), stays abandoned, its claim not counted: the next delivery runs
// it alone too, with the same count.
func TestAnAbandonedMessageGivenBackUnrunStaysAbandoned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b := openShared(t, path, sqlite.Config{})
	registerWorkers(t, b, "jobs", "others")
	others := newWorkers(t, b, 1)
	publishOne(t, b, "others", "o-1")
	publishOne(t, b, "jobs", "a-1")
	db := openFile(t, path)
	markAbandoned(t, db, "a-1")
	otherMsgs, err := others.Subscribe(t.Context(), "others")
	if err != nil {
		t.Fatal(err)
	}
	o1 := receive(t, otherMsgs, "o-1")

	// a-1 is claimed, and waits for o-1's handler to run alone; the
	// subscription stops meanwhile.
	stopped, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "workers"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	if _, err := stopped.Subscribe(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	waitForRow(t, db, "a-1", "claimed", func(attempts, inFlight int) bool { return attempts == 4 })
	stop()
	waitForRow(t, db, "a-1", "given back", func(attempts, inFlight int) bool { return attempts == 3 })
	_ = stopped.Close()
	o1.Ack()

	a1 := receive(t, subscribeWorkers(t, b), "a-1")
	backendtest.ExpectAbandonedRuns(t, a1, "2", "after it was given back unrun")
	if got, want := a1.Metadata.Get(backend.MetadataAttempt), "4"; got != want {
		t.Errorf("a-1's attempt: got %q, want %q (the claim given back did not count)", got, want)
	}
	a1.Ack()
}

// waitForRow waits until the delivery of message uuid satisfies ok.
func waitForRow(t *testing.T, db *sql.DB, uuid, what string, ok func(attempts, inFlight int) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var attempts, inFlight int
		if err := db.QueryRow(`SELECT attempts, in_flight FROM queue_deliveries
			WHERE message_id = (SELECT id FROM queue_messages WHERE uuid = ?)`, uuid).Scan(&attempts, &inFlight); err != nil {
			t.Fatal(err)
		}
		if ok(attempts, inFlight) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not %s within 10s: attempts %d, in flight %d", uuid, what, attempts, inFlight)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Runs alone count only in a row: a delivery that was not abandoned (its
// consumer let go of it: a shutdown gave up on its handler) starts the
// count again, so that an older run alone does not weigh on a later crash.
func TestADeliveryNotAbandonedStartsTheCountAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b := openShared(t, path, sqlite.Config{})
	registerWorkers(t, b, "jobs")
	publishOne(t, b, "jobs", "m-1")
	db := openFile(t, path)
	if _, err := db.Exec(`UPDATE queue_deliveries SET in_flight = 0, attempts = 3, solo_runs = 2`); err != nil {
		t.Fatal(err)
	}
	m := receive(t, subscribeWorkers(t, b), "m-1")
	if got := m.Metadata.Get(backend.MetadataAbandoned); got != "" {
		t.Errorf("abandoned runs: got %q, want none", got)
	}
	if got, want := soloRuns(t, db, "m-1"), 0; got != want {
		t.Errorf("runs alone counted once claimed: got %d, want %d", got, want)
	}
	m.Ack()
}

// registerWorkers registers group "workers" on topics, so that what is
// published waits for it.
func registerWorkers(t *testing.T, b *sqlite.Backend, topics ...string) {
	t.Helper()
	sub := newWorkers(t, b, 1)
	for _, topic := range topics {
		if err := sub.(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil {
			t.Fatal(err)
		}
	}
}

// newWorkers is a subscriber of group "workers", closed at cleanup.
func newWorkers(t *testing.T, b *sqlite.Backend, concurrency int) message.Subscriber {
	t.Helper()
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "workers", Concurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func publishOne(t *testing.T, b *sqlite.Backend, topic, uuid string) {
	t.Helper()
	if err := b.Publisher().Publish(topic, message.NewMessage(uuid, []byte("x"))); err != nil {
		t.Fatal(err)
	}
}

// markAbandoned leaves the delivery of message uuid as a consumer that
// died in the message's second run alone would: in flight, at attempt 3,
// with two runs alone.
func markAbandoned(t *testing.T, db *sql.DB, uuid string) {
	t.Helper()
	if _, err := db.Exec(`UPDATE queue_deliveries SET in_flight = 1, attempts = 3, solo_runs = 2
		WHERE message_id = (SELECT id FROM queue_messages WHERE uuid = ?)`, uuid); err != nil {
		t.Fatal(err)
	}
}

// A delivery whose run alone cannot be recorded (here a trigger refuses
// it, as a damaged file would) is given back still abandoned, and runs
// alone, with the same count, once the record can be written.
func TestARunAloneThatCannotBeRecordedIsTriedAgainStillAbandoned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b := openShared(t, path, sqlite.Config{})
	registerWorkers(t, b, "jobs")
	publishOne(t, b, "jobs", "a-1")
	db := openFile(t, path)
	markAbandoned(t, db, "a-1")
	if _, err := db.Exec(`CREATE TRIGGER refuse_solo_run BEFORE UPDATE OF solo_runs ON queue_deliveries
		WHEN NEW.solo_runs > OLD.solo_runs BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
		t.Fatal(err)
	}
	msgs, err := newWorkers(t, b, 1).Subscribe(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	claims := b.WriteStats().Operations[sqlite.OpClaim]
	expectNothing(t, msgs, "while its run alone cannot be recorded") // claimed, refused, given back, again and again
	// Not at once: a claim comes at least 100 ms after a refusal.
	if got := b.WriteStats().Operations[sqlite.OpClaim] - claims; got > 10 {
		t.Errorf("claims while the run alone was refused for 300 ms: got %d, want a few (backing off)", got)
	}
	if _, err := db.Exec(`DROP TRIGGER refuse_solo_run`); err != nil {
		t.Fatal(err)
	}

	a1 := receive(t, msgs, "a-1")
	backendtest.ExpectAbandonedRuns(t, a1, "2", "once its run could be recorded")
	if got, want := a1.Metadata.Get(backend.MetadataAttempt), "4"; got != want {
		t.Errorf("a-1's attempt: got %q, want %q (the claims given back did not count)", got, want)
	}
	a1.Ack()
}

// workersStats is group "workers"'s statistics of topic.
func workersStats(t *testing.T, b *sqlite.Backend, topic string) backend.GroupStats {
	t.Helper()
	stats, err := b.Inspector().Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range stats {
		for _, g := range ts.Groups {
			if ts.Topic == topic && g.ConsumerGroup == "workers" {
				return g
			}
		}
	}
	t.Fatalf("stats: no group workers on %s in %+v", topic, stats)
	return backend.GroupStats{}
}

// A handler that does not finish (a hung one) does not hold up the
// process: once it has run for the alone wait, a message whose previous
// delivery was abandoned runs beside it, that run not counted.
func TestAnAbandonedMessageBehindAHungHandlerRunsBesideItUncounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b := openShared(t, path, sqlite.WithAloneWait(sqlite.Config{}, 200*time.Millisecond))
	registerWorkers(t, b, "jobs", "others")
	publishOne(t, b, "others", "hung")
	publishOne(t, b, "jobs", "a-1")
	db := openFile(t, path)
	markAbandoned(t, db, "a-1")
	otherMsgs, err := newWorkers(t, b, 1).Subscribe(t.Context(), "others")
	if err != nil {
		t.Fatal(err)
	}
	hung := receive(t, otherMsgs, "hung")
	defer hung.Ack()
	jobMsgs, err := newWorkers(t, b, 1).Subscribe(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}

	a1 := receive(t, jobMsgs, "a-1")
	backendtest.ExpectAbandonedRuns(t, a1, "2", "")
	if got, want := soloRuns(t, db, "a-1"), 2; got != want {
		t.Errorf("a-1's runs alone once it runs beside the hung handler: got %d, want %d (this run not counted)", got, want)
	}
	a1.Ack()
}
