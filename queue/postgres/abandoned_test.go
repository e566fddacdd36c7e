package postgres_test

import (
	"database/sql"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/backend/backendtest"
	"github.com/orderflow/orderflow/queue/postgres"
)

// A message whose previous delivery was abandoned (claimed, and never
// acked, nacked or given back: its consumer died) runs alone among the
// handlers of its backend, whatever their topic: it is handed out only
// once the handler running has its outcome, and nothing is handed out
// beside it until it has its own. Its run is recorded before it starts;
// its ack marks its record acked before the others go on (the batch's
// offset update deletes it); a nack resets the count.
func TestAnAbandonedMessageRunsAloneAndItsRunIsRecorded(t *testing.T) {
	dsn := testDSN(t)
	b := openBackend(t, dsn, fastConfig())
	db := openSQL(t, dsn)
	jobs, others := newTopic(t), newTopic(t)
	publish(t, b, others, message.NewMessage("o-1", nil))
	publish(t, b, jobs, message.NewMessage("a-1", nil), message.NewMessage("n-1", nil))
	// As a consumer that died in a-1's second run alone leaves it.
	markAbandoned(t, db, jobs, "a-1", 3, 2)
	if g := groupStats(t, b, jobs, "workers"); g.Abandoned != 1 || g.InFlight != 0 {
		t.Errorf("stats of the group with a-1 abandoned: got abandoned %d, in flight %d; want 1, 0", g.Abandoned, g.InFlight)
	}

	otherMsgs := subscribe(t, newSubscriber(t, b, "workers"), others)
	o1 := receive(t, otherMsgs)
	jobMsgs := subscribe(t, newSubscriber(t, b, "workers"), jobs)
	expectNothing(t, jobMsgs, 300*time.Millisecond) // while o-1's handler runs
	o1.Ack()

	a1 := receive(t, jobMsgs)
	assertDelivery(t, a1, "a-1", "4", "", false)
	backendtest.ExpectAbandonedRuns(t, a1, "2", "")
	if got, want := soloRuns(t, db, jobs, "a-1"), 3; got != want {
		t.Errorf("a-1's runs alone recorded once handed out: got %d, want %d", got, want)
	}
	if g := groupStats(t, b, jobs, "workers"); g.Abandoned != 0 || g.InFlight != 1 {
		t.Errorf("stats of the group while a-1 runs alone: got abandoned %d, in flight %d; want 0, 1", g.Abandoned, g.InFlight)
	}
	publish(t, b, others, message.NewMessage("o-2", nil))
	expectNothing(t, otherMsgs, 300*time.Millisecond) // while a-1 runs alone
	a1.Ack()
	o2 := receive(t, otherMsgs)
	var acked, inFlight bool
	err := db.QueryRow(`SELECT acked_in <> 0, in_flight FROM queue_delivery_attempts
		WHERE topic = $1 AND consumer_group = 'workers' AND message_uuid = 'a-1'`, jobs).Scan(&acked, &inFlight)
	if err != nil && !errors.Is(err, sql.ErrNoRows) { // no row: the batch's offset update came first
		t.Fatal(err)
	}
	if err == nil && (!acked || inFlight) {
		t.Errorf("a-1's record once o-2 was handed out: got acked %v, in flight %v; want acked, not in flight (marked before the others went on)", acked, inFlight)
	}
	o2.Ack()

	n1 := receive(t, jobMsgs)
	assertDelivery(t, n1, "n-1", "1", "", false)
	if got := n1.Metadata.Get(backend.MetadataAbandoned); got != "" {
		t.Errorf("n-1's abandoned runs: got %q, want none (its delivery was never abandoned)", got)
	}
	publish(t, b, jobs, message.NewMessage("a-2", nil))
	markAbandoned(t, db, jobs, "a-2", 1, 1)
	n1.Ack()
	a2 := receive(t, jobMsgs)
	assertDelivery(t, a2, "a-2", "2", "", false)
	publish(t, b, others, message.NewMessage("o-3", nil))
	expectNothing(t, otherMsgs, 300*time.Millisecond) // while a-2 runs alone
	// The nack is recorded before the others go on, not after its delay.
	delay.Message(a2, delay.For(time.Hour))
	a2.Nack()
	receive(t, otherMsgs).Ack()
	if got, want := soloRuns(t, db, jobs, "a-2"), 0; got != want {
		t.Errorf("a-2's runs alone after a nack: got %d, want %d (a failure is an outcome)", got, want)
	}
}

// soloRuns is the runs alone recorded for the message uuid of topic in
// group "workers", -1 when it has no record.
func soloRuns(t *testing.T, db *sql.DB, topic, uuid string) int {
	t.Helper()
	var n int
	err := db.QueryRow(`SELECT solo_runs FROM queue_delivery_attempts
		WHERE topic = $1 AND consumer_group = 'workers' AND message_uuid = $2`, topic, uuid).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A queue made before delivery records counted runs alone gets the
// columns when it is opened, and works on.
func TestAQueueWithoutTheSoloRunColumnsGetsThem(t *testing.T) {
	dsn := testDSN(t)
	openBackend(t, dsn, fastConfig()) // creates the tables
	db := openSQL(t, dsn)
	if _, err := db.Exec(`ALTER TABLE queue_delivery_attempts DROP COLUMN abandoned, DROP COLUMN solo_runs`); err != nil {
		t.Fatal(err)
	}

	b := openBackend(t, dsn, fastConfig())
	topic := newTopic(t)
	publish(t, b, topic, message.NewMessage("m-1", nil))
	m := receive(t, subscribe(t, newSubscriber(t, b, "workers"), topic))
	assertDelivery(t, m, "m-1", "1", "", false)
	m.Ack()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'queue_delivery_attempts'
		AND column_name IN ('abandoned', 'solo_runs')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("columns abandoned and solo_runs: got %d of them, want both", n)
	}
}

// A queue made by an older release, opened without changing it (as
// queuectl and the console do), is refused with what to do when it lacks
// a column the statistics read, rather than opened for them to fail on
// it; one that lacks only a column the tools never read (replay_id, the
// subscriber's) opens and answers. Opened by a service, it gets the
// columns and the tools open it.
func TestAnOlderQueueOpenedAsItIsSaysHowToUpgradeIt(t *testing.T) {
	dsn := testDSN(t)
	openBackend(t, dsn, fastConfig()) // creates the tables
	db := openSQL(t, dsn)
	readOnly := fastConfig()
	readOnly.MustExist = true

	if _, err := db.Exec(`ALTER TABLE queue_delivery_attempts DROP COLUMN replay_id`); err != nil {
		t.Fatal(err)
	}
	b, err := postgres.Open(t.Context(), dsn, readOnly)
	if err != nil {
		t.Fatalf("Open with MustExist of a queue without replay_id only: %v", err)
	}
	if _, err := b.Inspector().Stats(t.Context()); err != nil {
		t.Errorf("Stats of a queue without replay_id: %v", err)
	}
	if _, err := b.DeadLetters().List(t.Context(), backend.DeadLetterFilter{}); err != nil {
		t.Errorf("dead letters of a queue without replay_id: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := db.Exec(`ALTER TABLE queue_delivery_attempts DROP COLUMN acked_in`); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(t.Context(), dsn, readOnly)
	if err == nil || !strings.Contains(err.Error(), "older release") || !strings.Contains(err.Error(), "queue_delivery_attempts.acked_in") {
		t.Fatalf("Open with MustExist of a queue without acked_in: got %v, want an error naming the column and the older release", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'queue_delivery_attempts' AND column_name IN ('acked_in', 'replay_id')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("Open with MustExist added %d columns; want the queue left as it was", n)
	}

	openBackend(t, dsn, fastConfig()) // a service of this release
	b, err = postgres.Open(t.Context(), dsn, readOnly)
	if err != nil {
		t.Fatalf("Open with MustExist after a service added the columns: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// A queue found along the search path behind an empty schema is checked
// where it is, not in the first schema of the path: opened with MustExist,
// it opens.
func TestAQueueBehindAnEmptySchemaOpensAsItIs(t *testing.T) {
	dsn := testDSN(t)
	openBackend(t, dsn, fastConfig()) // the queue, in the test's schema
	db := openSQL(t, dsn)
	var queueSchema string
	if err := db.QueryRow(`SELECT current_schema()`).Scan(&queueSchema); err != nil {
		t.Fatal(err)
	}
	empty := queueSchema + "_empty"
	if _, err := db.Exec(`CREATE SCHEMA ` + empty); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.Exec(`DROP SCHEMA ` + empty + ` CASCADE`) })
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", empty+","+queueSchema)
	u.RawQuery = q.Encode()

	readOnly := fastConfig()
	readOnly.MustExist = true
	b, err := postgres.Open(t.Context(), u.String(), readOnly)
	if err != nil {
		t.Fatalf("Open with MustExist, search_path %s,%s: %v", empty, queueSchema, err)
	}
	if _, err := b.Inspector().Stats(t.Context()); err != nil {
		t.Errorf("Stats: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// A delivery taken over from a consumer that is alive (its handler
// outlived the ack deadline, so its group let another consumer have the
// message) is not abandoned: its owner holds its owner lock.
func TestADeliveryTakenOverFromALiveConsumerIsNotAbandoned(t *testing.T) {
	dsn := testDSN(t)
	cfg := fastConfig()
	cfg.AckDeadline = 300 * time.Millisecond
	slow, other := openBackend(t, dsn, cfg), openBackend(t, dsn, cfg)
	topic := newTopic(t)
	publish(t, slow, topic, message.NewMessage("m-1", nil))
	held := receive(t, subscribe(t, newSubscriber(t, slow, "workers"), topic))
	assertDelivery(t, held, "m-1", "1", "", false)

	taken := receive(t, subscribe(t, newSubscriber(t, other, "workers"), topic))
	assertDelivery(t, taken, "m-1", "2", "", false)
	if got := taken.Metadata.Get(backend.MetadataAbandoned); got != "" {
		t.Errorf("abandoned runs of a delivery taken over from a live consumer: got %q, want none", got)
	}
	taken.Ack()
	held.Ack()
}

// A message whose previous delivery was abandoned, claimed and then given
// back before it ran (its ack deadline passed while it waited to run
// alone), stays abandoned, its claim not counted: while the handler it
// waits for runs, it is not handed out beside it, and then it runs alone
// with the same count.
func TestAnAbandonedMessageGivenBackUnrunStaysAbandoned(t *testing.T) {
	dsn := testDSN(t)
	cfg := fastConfig()
	cfg.AckDeadline = 200 * time.Millisecond
	b := openBackend(t, dsn, cfg)
	db := openSQL(t, dsn)
	jobs, others := newTopic(t), newTopic(t)
	publish(t, b, others, message.NewMessage("o-1", nil))
	publish(t, b, jobs, message.NewMessage("a-1", nil))
	markAbandoned(t, db, jobs, "a-1", 3, 2)
	otherMsgs := subscribe(t, newSubscriber(t, b, "workers"), others)
	o1 := receive(t, otherMsgs)
	jobMsgs := subscribe(t, newSubscriber(t, b, "workers"), jobs)
	// a-1 is claimed, waits, and is given back at its deadline, again
	// and again.
	expectNothing(t, jobMsgs, 5*cfg.AckDeadline)
	o1.Ack()

	a1 := receive(t, jobMsgs)
	assertDelivery(t, a1, "a-1", "4", "", false)
	backendtest.ExpectAbandonedRuns(t, a1, "2", "after it was given back unrun")
	a1.Ack()
}

// A delivery whose run alone cannot be recorded (here a trigger refuses
// it, as a failing server would) is given back still abandoned, and runs
// alone, with the same count, once the record can be written.
func TestARunAloneThatCannotBeRecordedIsTriedAgainStillAbandoned(t *testing.T) {
	dsn := testDSN(t)
	b := openBackend(t, dsn, fastConfig())
	db := openSQL(t, dsn)
	topic := newTopic(t)
	publish(t, b, topic, message.NewMessage("a-1", nil))
	markAbandoned(t, db, topic, "a-1", 3, 2)
	if _, err := db.Exec(`
		CREATE FUNCTION refuse_solo_run() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
		CREATE TRIGGER refuse_solo_run BEFORE UPDATE OF solo_runs ON queue_delivery_attempts
			FOR EACH ROW WHEN (NEW.solo_runs > OLD.solo_runs) EXECUTE FUNCTION refuse_solo_run()`); err != nil {
		t.Fatal(err)
	}
	msgs := subscribe(t, newSubscriber(t, b, "workers"), topic)
	expectNothing(t, msgs, 300*time.Millisecond) // claimed, refused, given back, again and again
	if _, err := db.Exec(`DROP TRIGGER refuse_solo_run ON queue_delivery_attempts`); err != nil {
		t.Fatal(err)
	}

	a1 := receive(t, msgs)
	assertDelivery(t, a1, "a-1", "4", "", false)
	backendtest.ExpectAbandonedRuns(t, a1, "2", "once its run could be recorded")
	a1.Ack()
}

// A handler that does not finish (a hung one) does not hold up the
// process: once it has run for the alone wait, a message whose previous
// delivery was abandoned runs beside it, that run not counted. That is
// said in a warning, which the services write at their default level (the
// queue's info records are debug records there; docs/running.md names it).
func TestAnAbandonedMessageBehindAHungHandlerRunsBesideItUncounted(t *testing.T) {
	dsn := testDSN(t)
	logs := newRecordingLog()
	cfg := fastConfig()
	cfg.Logger = logs
	b := openBackend(t, dsn, postgres.WithAloneWait(cfg, 200*time.Millisecond))
	db := openSQL(t, dsn)
	jobs, others := newTopic(t), newTopic(t)
	publish(t, b, others, message.NewMessage("hung", nil))
	publish(t, b, jobs, message.NewMessage("a-1", nil))
	markAbandoned(t, db, jobs, "a-1", 3, 2)
	hung := receive(t, subscribe(t, newSubscriber(t, b, "workers"), others))
	defer hung.Ack()

	a1 := receive(t, subscribe(t, newSubscriber(t, b, "workers"), jobs))
	assertDelivery(t, a1, "a-1", "4", "", false)
	backendtest.ExpectAbandonedRuns(t, a1, "2", "")
	if got, want := soloRuns(t, db, jobs, "a-1"), 2; got != want {
		t.Errorf("a-1's runs alone once it runs beside the hung handler: got %d, want %d (this run not counted)", got, want)
	}
	if got := logs.matching(slog.LevelWarn, "runs beside the others, uncounted"); len(got) != 1 || got[0].fields["message_uuid"] != "a-1" {
		t.Errorf("warnings that a-1 runs beside the others: got %v, want one", got)
	}
	a1.Ack()
}

// markAbandoned leaves group "workers"'s delivery of message uuid on topic
// as a consumer that died would: in flight, owned by nobody alive, at
// attempts, with soloRuns runs alone.
func markAbandoned(t *testing.T, db *sql.DB, topic, uuid string, attempts, soloRuns int) {
	t.Helper()
	if _, err := db.Exec(`INSERT INTO queue_delivery_attempts
		(topic, consumer_group, message_uuid, attempts, in_flight, solo_runs, delivered_at)
		VALUES ($1, 'workers', $2, $3, true, $4, now())`, topic, uuid, attempts, soloRuns); err != nil {
		t.Fatal(err)
	}
}
