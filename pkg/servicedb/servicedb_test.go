package servicedb_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/queue/sqlitefile"
)

func open(t *testing.T) *sql.DB {
	t.Helper()
	db, err := servicedb.Open(context.Background(), filepath.Join(t.TempDir(), "new", "dir", "svc.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(`CREATE TABLE things (name TEXT PRIMARY KEY, status TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestOpenSetsThePragmas(t *testing.T) {
	db := open(t)
	for _, tc := range []struct{ pragma, want string }{
		{"journal_mode", "wal"}, {"busy_timeout", "10000"}, {"foreign_keys", "1"}, {"synchronous", "1"},
		{"wal_autocheckpoint", strconv.Itoa(servicedb.WALAutocheckpointPages)},
		{"page_size", strconv.Itoa(sqlitefile.DefaultPageSize)}, // a new file's
	} {
		var got string
		if err := db.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s: got %q, want %q", tc.pragma, got, tc.want)
		}
	}
	if got := db.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("max open connections: got %d, want 1", got)
	}
}

// A service database and the directory made for it are the service's
// owner's alone: they hold customer data.
func TestOpenMakesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "svc.db")
	db, err := servicedb.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(`CREATE TABLE things (name TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{
		{dir, 0o700}, {path, 0o600}, {path + "-wal", 0o600}, {path + "-shm", 0o600},
	} {
		st, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != tc.want {
			t.Errorf("%s: got permissions %v, want %v", filepath.Base(tc.path), got, tc.want)
		}
	}
}

func count(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM things`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInTxCommitsOrRollsBack(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	insert := func(name string, fail error) error {
		return servicedb.InTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO things VALUES (?, 'NEW')`, name); err != nil {
				return err
			}
			return fail
		})
	}
	if err := insert("a", nil); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := insert("b", boom); !errors.Is(err, boom) {
		t.Errorf("failing fn: got %v, want its error", err)
	}
	if got := count(t, db); got != 1 {
		t.Errorf("rows: got %d, want 1 (the failed transaction rolled back)", got)
	}
}

// A panicking fn leaves nothing behind: its partial work is rolled back,
// not committed, and the panic reaches the caller.
func TestInTxRollsBackOnPanic(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	got := func() (v any) {
		defer func() { v = recover() }()
		_ = servicedb.InTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO things VALUES ('half', 'NEW')`); err != nil {
				t.Fatal(err)
			}
			panic("boom")
		})
		return nil
	}()
	if got != "boom" {
		t.Errorf("recovered: got %v, want the panic %q", got, "boom")
	}
	if n := count(t, db); n != 0 {
		t.Errorf("rows: got %d, want 0 (the panicking transaction rolled back)", n)
	}
	// The connection is free again: the next transaction commits.
	if err := servicedb.InTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO things VALUES ('next', 'NEW')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db); n != 1 {
		t.Errorf("rows: got %d, want 1", n)
	}
}

func TestCountByKey(t *testing.T) {
	db := open(t)
	if _, err := db.Exec(`INSERT INTO things VALUES ('a', 'NEW'), ('b', 'NEW'), ('c', 'DONE')`); err != nil {
		t.Fatal(err)
	}
	type status string
	got, err := servicedb.CountByKey[status](context.Background(), db, "count things", `SELECT status, COUNT(*) FROM things GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["NEW"] != 2 || got["DONE"] != 1 {
		t.Errorf("counts: got %v, want NEW 2 and DONE 1", got)
	}
	if _, err := servicedb.CountByKey[status](context.Background(), db, "count things", `SELECT nope FROM things`); err == nil ||
		!strings.HasPrefix(err.Error(), "count things: ") {
		t.Errorf("bad query: got %v, want an error starting with its name", err)
	}
}

// txView is a service's view of a transaction: its store plus Emit.
type txView struct {
	*servicedb.Tx
}

func (v txView) add(ctx context.Context, name string) error {
	_, err := v.SQL().ExecContext(ctx, `INSERT INTO things VALUES (?, 'NEW')`, name)
	return err
}

// forwarded relays the outbox of db to an in-memory Pub/Sub and returns
// the messages forwarded to topic.
func forwarded(t *testing.T, db *sql.DB, ob *outbox.Outbox, topic string) <-chan *message.Message {
	t.Helper()
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16}, watermill.NopLogger{})
	msgs, err := ps.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := outbox.NewForwarder(db, ps, outbox.ForwarderConfig{Outbox: ob})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fwd.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = fwd.Close()
		if err := <-done; err != nil {
			t.Errorf("forwarder: %v", err)
		}
		_ = ps.Close()
	})
	return msgs
}

func next(t *testing.T, msgs <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m := <-msgs:
		m.Ack()
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("nothing forwarded within 10s")
		return nil
	}
}

func TestUnitOfWork(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	ib, err := inbox.New(ctx, db, inbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(ctx, db, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	commits := 0
	cfg := servicedb.UnitOfWorkConfig{DB: db, Inbox: ib, Outbox: ob, ConsumerGroup: "svc", BeforeCommit: func(context.Context) { commits++ }}
	view := func(t *servicedb.Tx) txView { return txView{t} }
	if _, err := servicedb.NewUnitOfWork(servicedb.UnitOfWorkConfig{DB: db}, view); err == nil {
		t.Error("NewUnitOfWork without inbox and outbox: got nil error, want one")
	}
	uow, err := servicedb.NewUnitOfWork(cfg, view)
	if err != nil {
		t.Fatal(err)
	}
	events := forwarded(t, db, ob, contracts.TopicInventoryEvents)

	// A command: its row, its inbox record and its event commit together,
	// in the trace of its context.
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	traced := trace.ContextWithSpanContext(ctx, sc)
	handle := func(id, name string, fail error) (bool, error) {
		return uow.Do(traced, id, func(ctx context.Context, tx txView) error {
			if err := tx.add(ctx, name); err != nil {
				return err
			}
			if err := tx.Emit(ctx, contracts.StockReleased{OrderID: name}); err != nil {
				return err
			}
			return fail
		})
	}
	if dup, err := handle("m-1", "o-1", nil); dup || err != nil {
		t.Fatalf("first delivery: got duplicate=%v, %v; want false, nil", dup, err)
	}
	msg := next(t, events)
	for key, want := range map[string]string{
		contracts.MetadataCausationID: "m-1", contracts.MetadataMessageID: msg.UUID,
		contracts.MetadataCorrelationID: "o-1", contracts.MetadataType: contracts.TypeStockReleased,
	} {
		if got := msg.Metadata.Get(key); got != want {
			t.Errorf("metadata %s: got %q, want %q", key, got, want)
		}
	}
	if tp := msg.Metadata.Get("traceparent"); !strings.Contains(tp, sc.TraceID().String()) {
		t.Errorf("traceparent: got %q, want trace %s", tp, sc.TraceID())
	}

	// The same message again: nothing runs. A failing one: nothing stays.
	if dup, err := handle("m-1", "o-1", nil); !dup || err != nil {
		t.Errorf("redelivery: got duplicate=%v, %v; want true, nil", dup, err)
	}
	boom := errors.New("boom")
	if _, err := handle("m-2", "o-2", boom); !errors.Is(err, boom) {
		t.Errorf("failing command: got %v, want its error", err)
	}
	if dup, err := handle("m-2", "o-2", nil); dup || err != nil {
		t.Errorf("retry of the failed command: got duplicate=%v, %v; want false, nil", dup, err)
	}
	next(t, events)
	// Without a message id (an admin request) there is no deduplication.
	if dup, err := uow.Do(ctx, "", func(ctx context.Context, tx txView) error { return tx.add(ctx, "admin") }); dup || err != nil {
		t.Errorf("admin request: got duplicate=%v, %v; want false, nil", dup, err)
	}
	// Nor for a request.
	if err := uow.DoRequest(ctx, func(ctx context.Context, tx txView) error { return tx.add(ctx, "admin 2") }); err != nil {
		t.Errorf("admin request: got %v, want nil", err)
	}
	if got := count(t, db); got != 4 {
		t.Errorf("rows: got %d, want 4 (o-1, o-2, admin twice)", got)
	}
	// The fault point is for messages only: an admin request is not
	// redelivered, so a crash there would only kill the process (and its
	// retry with the same key again).
	if commits != 2 {
		t.Errorf("BeforeCommit: got %d calls, want 2 (one per committed message, none for the admin requests)", commits)
	}
}

func TestEmitPoison(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	ob, err := outbox.New(ctx, db, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	events := forwarded(t, db, ob, contracts.TopicPaymentEvents)
	id, err := servicedb.EmitPoison(ctx, db, ob, contracts.TopicPaymentEvents, contracts.TypePaymentCharged)
	if err != nil {
		t.Fatal(err)
	}
	msg := next(t, events)
	if msg.UUID != id || msg.Metadata.Get(servicedb.MetadataPoison) != "true" {
		t.Errorf("poison message: got %s %v, want %s marked poison", msg.UUID, msg.Metadata, id)
	}
	if _, err := contracts.Decode(msg.Metadata, msg.Payload); !errors.Is(err, contracts.ErrUndecodable) {
		t.Errorf("decode: got %v, want ErrUndecodable", err)
	}
}
