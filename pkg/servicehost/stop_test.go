package servicehost_test

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/labstack/echo/v4"
	_ "github.com/mattn/go-sqlite3" // the test's own connection to the queue file

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/logtest"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
)

// msgsAndLevels returns the messages and levels of the records written.
func msgsAndLevels(t *testing.T, b *logtest.Buffer) (msgs, levels []string) {
	t.Helper()
	for _, r := range b.Records(t) {
		m, _ := r["msg"].(string)
		l, _ := r["level"].(string)
		msgs, levels = append(msgs, m), append(levels, l)
	}
	return msgs, levels
}

// holdQueueLock takes the SQLite queue file's write lock from a connection
// of its own, as another process would, and returns its release.
func holdQueueLock(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("take the queue file's write lock: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
			_ = conn.Close()
			_ = db.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// While another process holds the SQLite queue's write lock, the whole
// stop still ends within ShutdownTimeout, with "stopped" as its last
// record: the handler's ack and the forwarder's publish, which wait for
// the lock, are given up at the stop's deadline, and nothing is lost for
// it. The message whose ack was given up is delivered again (and dropped
// by the inbox), and the event the handler committed stays in the outbox,
// forwarded by the next run. The stop used to wait for the lock: the
// queue's close alone took the busy timeout (30 s), twice that after a
// wait for the lock file.
func TestTheStopIsBoundedWhileAnotherProcessHoldsTheQueuesLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	queueFile := filepath.Join(dir, "queue.db")
	queueURL := "sqlite://" + queueFile + "?busy_timeout=30s&lease=1s"
	const shutdownTimeout = 2 * time.Second

	// The test's own view of the queue, as another process's.
	q, err := queue.Open(ctx, queue.Config{URL: queueURL})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	sub, err := q.Backend().Subscriber(backend.SubscriberConfig{ConsumerGroup: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.(message.SubscribeInitializer).SubscribeInitialize(contracts.TopicInventoryEvents); err != nil {
		t.Fatal(err)
	}

	started, proceed, handled := make(chan struct{}, 10), make(chan struct{}), make(chan struct{}, 10)
	spec := echoSpec()
	wire := spec.Wire
	spec.Wire = func(ctx context.Context, p servicehost.Parts) (func(*echo.Echo), error) {
		p.Router.AddMiddleware(func(h message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				started <- struct{}{}
				<-proceed
				defer func() { handled <- struct{}{} }()
				return h(msg)
			}
		})
		return wire(ctx, p)
	}
	run := func(logs *logtest.Buffer) (stop func() time.Duration, h *servicehost.Host) {
		t.Helper()
		h, err := servicehost.Open(ctx, spec, servicehost.Config{
			QueueURL: queueURL, DataDir: dir, ShutdownTimeout: shutdownTimeout,
			Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		cancel, done := runHost(ctx, t, h)
		return func() time.Duration {
			began := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("Run still running a minute after its context ended")
			}
			return time.Since(began)
		}, h
	}

	var logs logtest.Buffer
	stop, _ := run(&logs)
	payload, meta, err := contracts.Encode(contracts.ReserveStock{OrderID: "o-1", Items: []contracts.Item{{SKU: "SKU-1", Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	cmd := message.NewMessage(watermill.NewUUID(), payload)
	for k, v := range meta {
		cmd.Metadata.Set(k, v)
	}
	if err := q.Publisher().Publish(contracts.TopicInventoryCommands, cmd); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not start within 10s")
	}
	release := holdQueueLock(t, queueFile)
	close(proceed) // the handler commits; its ack and the event's forward wait for the lock
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not return within 10s")
	}

	// The bound is ShutdownTimeout; the margin is for a loaded machine,
	// far below the 30 s busy timeout the stop used to wait.
	if took := stop(); took > shutdownTimeout+5*time.Second {
		t.Errorf("stop while another process holds the queue's lock: took %s, want about ShutdownTimeout (%s), not the busy timeout (30s)", took.Round(time.Millisecond), shutdownTimeout)
	}
	msgs, levels := msgsAndLevels(t, &logs)
	if len(msgs) == 0 || msgs[len(msgs)-1] != "stopped" {
		t.Errorf("records: got %q, want \"stopped\" last", msgs)
	}
	for i, l := range levels {
		if l == "ERROR" {
			t.Errorf("record %q at ERROR; want none for a clean, bounded stop", msgs[i])
		}
	}
	if t.Failed() {
		t.Logf("records:\n%s", logs.String())
	}
	release()

	// Nothing lost: the next run forwards the event the first committed,
	// and the command, whose ack was given up, is delivered again and
	// dropped by the inbox.
	events, err := sub.Subscribe(ctx, contracts.TopicInventoryEvents)
	if err != nil {
		t.Fatal(err)
	}
	var again logtest.Buffer
	stop, h := run(&again)
	select {
	case <-started: // the redelivery reaches the handler
	case <-time.After(30 * time.Second):
		t.Fatal("the command whose ack was given up was not delivered again")
	}
	select {
	case ev := <-events:
		ev.Ack()
		if ev.Metadata.Get(contracts.MetadataCausationID) != cmd.UUID {
			t.Errorf("event: caused by %s, want %s", ev.Metadata.Get(contracts.MetadataCausationID), cmd.UUID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the event the first run committed was not forwarded")
	}
	var n int
	getJSON(t, "http://"+h.HTTPAddr()+"/orders", &n)
	if n != 1 {
		t.Errorf("orders after the redelivery: %d, want 1 (the inbox drops it)", n)
	}
	stop()
}
