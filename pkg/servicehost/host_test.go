package servicehost_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
)

// echoSpec is a tiny worker service: it answers each ReserveStock on
// inventory.commands with StockReserved, records the order in its table
// and serves GET /orders (the count).
func echoSpec() servicehost.Spec {
	return servicehost.Spec{
		Name:            "inventory",
		DefaultHTTPAddr: "127.0.0.1:0",
		PoisonTopic:     contracts.TopicInventoryEvents,
		PoisonType:      contracts.TypeStockReserved,
		Migrate: func(ctx context.Context, db *sql.DB) error {
			_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY)`)
			return err
		},
		Wire: func(_ context.Context, p servicehost.Parts) (func(*echo.Echo), error) {
			uow, err := servicedb.NewUnitOfWork(p.UnitOfWork, func(t *servicedb.Tx) *servicedb.Tx { return t })
			if err != nil {
				return nil, err
			}
			p.Router.Handle("echo", contracts.TopicInventoryCommands, func(msg *message.Message) error {
				m, err := contracts.Decode(msg.Metadata, msg.Payload)
				if err != nil {
					return queue.Permanent(err)
				}
				r, ok := m.(contracts.ReserveStock)
				if !ok {
					return queue.Permanent(errors.New("not a ReserveStock"))
				}
				_, err = uow.Do(msg.Context(), msg.UUID, func(ctx context.Context, tx *servicedb.Tx) error {
					if _, err := tx.SQL().ExecContext(ctx, `INSERT INTO orders VALUES (?)`, r.OrderID); err != nil {
						return err
					}
					//lint:ignore S1016 a command and its event share their fields by coincidence: a conversion would tie them
					return tx.Emit(ctx, contracts.StockReserved{OrderID: r.OrderID, Items: r.Items})
				})
				return err
			})
			return func(e *echo.Echo) {
				e.GET("/orders", func(c echo.Context) error {
					var n int
					if err := p.DB.QueryRowContext(c.Request().Context(), `SELECT COUNT(*) FROM orders`).Scan(&n); err != nil {
						return err
					}
					return c.JSON(http.StatusOK, n)
				})
			}, nil
		},
	}
}

// runHost runs h in a goroutine and waits for its handlers to run (fatal
// after 10 s): cancel ends the run, done carries Run's error.
func runHost(ctx context.Context, t *testing.T, h *servicehost.Host) (cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- h.Run(runCtx) }()
	select {
	case <-h.Running():
	case <-time.After(10 * time.Second):
		t.Fatal("handlers not running after 10s")
	}
	return cancel, errc
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if v != nil {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return res.StatusCode
}

func TestHostRunsAServiceOnASharedQueue(t *testing.T) {
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{URL: "memory://"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	sub, err := q.Backend().Subscriber(backend.SubscriberConfig{ConsumerGroup: "test"})
	if err != nil {
		t.Fatal(err)
	}
	events, err := sub.Subscribe(ctx, contracts.TopicInventoryEvents)
	if err != nil {
		t.Fatal(err)
	}
	next := func() *message.Message {
		t.Helper()
		select {
		case m := <-events:
			m.Ack()
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
			return nil
		}
	}

	dir := t.TempDir()
	h, err := servicehost.Open(ctx, echoSpec(), servicehost.Config{Queue: q, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "inventory.db")); err != nil {
		t.Errorf("database file: %v", err)
	}
	stop, done := runHost(ctx, t, h)
	base := "http://" + h.HTTPAddr()
	if code := getJSON(t, base+"/readyz", nil); code != http.StatusOK {
		t.Errorf("GET /readyz: got %d, want 200", code)
	}

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
	if got := next(); got.Metadata.Get(contracts.MetadataCausationID) != cmd.UUID ||
		got.Metadata.Get(contracts.MetadataType) != contracts.TypeStockReserved {
		t.Errorf("event: got %v, want StockReserved caused by %s", got.Metadata, cmd.UUID)
	}
	var n int
	if code := getJSON(t, base+"/orders", &n); code != http.StatusOK || n != 1 {
		t.Errorf("GET /orders (the service's own route): got %d %d, want 200 1", code, n)
	}

	// The poison fault publishes one unreadable event and switches off.
	if err := h.Faults().Set(faults.Poison, "true"); err != nil {
		t.Fatal(err)
	}
	poison := next()
	if _, err := contracts.Decode(poison.Metadata, poison.Payload); !errors.Is(err, contracts.ErrUndecodable) {
		t.Errorf("poison: got %v, want an undecodable message", err)
	}
	if h.Faults().Bool(faults.Poison) {
		t.Error("poison flag: got true, want false after firing")
	}
	// Everything the service sent arrived: its outbox empties (the
	// forwarder's offset moves as the batch that carried it commits).
	var ob struct {
		Pending *int64 `json:"pending"`
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		code := getJSON(t, base+"/outbox", &ob)
		if code == http.StatusOK && ob.Pending != nil && *ob.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("GET /outbox: got %d with %v pending, want 200 with 0 within 5s", code, ob.Pending)
			break
		}
	}

	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: got %v, want nil after cancel", err)
	}
	if err := h.Run(ctx); err == nil {
		t.Error("second Run: got nil error, want one")
	}
	// The queue was the caller's: it is still open.
	if err := q.Publisher().Publish("after", message.NewMessage(watermill.NewUUID(), nil)); err != nil {
		t.Errorf("publish on the shared queue after the stop: %v", err)
	}
	_ = sub.Close()
}

// A handler that outlives the shutdown timeout does not hold up the stop:
// draining the handlers is one stage of it, bounded like the others (not
// by the queue router's default of 30s).
func TestShutdownTimeoutBoundsTheHandlerDrain(t *testing.T) {
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{URL: "memory://"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// The handler blocks, deaf to its context, like one stuck where
	// cancellation cannot reach it.
	stuck, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	spec := echoSpec()
	spec.Wire = func(_ context.Context, p servicehost.Parts) (func(*echo.Echo), error) {
		p.Router.Handle("stuck", contracts.TopicInventoryCommands, func(*message.Message) error {
			close(stuck)
			<-release
			return nil
		})
		return nil, nil
	}
	const shutdown = 300 * time.Millisecond
	h, err := servicehost.Open(ctx, spec, servicehost.Config{Queue: q, DataDir: t.TempDir(), ShutdownTimeout: shutdown})
	if err != nil {
		t.Fatal(err)
	}
	stop, done := runHost(ctx, t, h)
	if err := q.Publisher().Publish(contracts.TopicInventoryCommands, message.NewMessage(watermill.NewUUID(), nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stuck:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not start within 10s")
	}

	start := time.Now()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
		if took := time.Since(start); took > 10*shutdown {
			t.Errorf("stop took %v, want about the shutdown timeout %v", took, shutdown)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Run did not return within 15s of its context ending; want about the shutdown timeout %v", shutdown)
	}
}

func TestOpenRejectsBadSpecsAndConfigs(t *testing.T) {
	ctx := context.Background()
	noWire := echoSpec()
	noWire.Wire = nil
	noPoison := echoSpec()
	noPoison.PoisonTopic = ""
	failingWire := echoSpec()
	failingWire.Wire = func(context.Context, servicehost.Parts) (func(*echo.Echo), error) {
		return nil, errors.New("wire failed")
	}
	tests := []struct {
		name string
		spec servicehost.Spec
		cfg  servicehost.Config
	}{
		{"spec without wire", noWire, servicehost.Config{}},
		{"spec without poison topic", noPoison, servicehost.Config{}},
		{"bad address", echoSpec(), servicehost.Config{HTTPAddr: "no port"}},
		{"negative shutdown timeout", echoSpec(), servicehost.Config{ShutdownTimeout: -time.Second}},
		{"negative concurrency", echoSpec(), servicehost.Config{Concurrency: -1}},
		{"dedup retention under the least", echoSpec(), servicehost.Config{QueueURL: "memory://", DedupRetention: servicehost.MinDedupRetention - time.Second}},
		{"bad queue URL", echoSpec(), servicehost.Config{QueueURL: "nats://x"}},
		{"failing wire", failingWire, servicehost.Config{QueueURL: "memory://"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DataDir = t.TempDir()
			if h, err := servicehost.Open(ctx, tc.spec, tc.cfg); err == nil {
				h.Close()
				t.Error("got nil error, want one")
			}
		})
	}
}

// The service's wiring gets the dedup retention it was configured with,
// for its own Idempotency-Keys (inventory's restocks), or the default.
func TestPartsCarryTheDedupRetention(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		set  time.Duration
		want time.Duration
	}{
		{"default", 0, servicehost.DefaultDedupRetention},
		{"set", 5 * time.Hour, 5 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := echoSpec()
			wire := spec.Wire
			var got time.Duration
			spec.Wire = func(ctx context.Context, p servicehost.Parts) (func(*echo.Echo), error) {
				got = p.DedupRetention
				return wire(ctx, p)
			}
			h, err := servicehost.Open(ctx, spec, servicehost.Config{QueueURL: "memory://", DataDir: t.TempDir(), DedupRetention: tc.set})
			if err != nil {
				t.Fatal(err)
			}
			h.Close()
			if got != tc.want {
				t.Errorf("got Parts.DedupRetention %s, want %s", got, tc.want)
			}
		})
	}
}

// A Host that fails to open on a queue the caller owns (which stays open)
// leaves nothing running: the router's subscriber, made before the admin
// address is bound, is closed too, not only the parts the Host opened.
func TestFailedOpenOnASharedQueueLeavesNothingRunning(t *testing.T) {
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "queue.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	before := goleak.IgnoreCurrent()
	_, err = servicehost.Open(ctx, echoSpec(), servicehost.Config{Queue: q, DataDir: t.TempDir(), HTTPAddr: taken.Addr().String()})
	if err == nil {
		t.Fatal("Open on a taken admin address: got no error")
	}
	if err := goleak.Find(before); err != nil {
		t.Errorf("after a failed Open: %v", err)
	}
}

// The fault registry outlives its Host (e2e/inprocess hands it out after
// a stop): poison set on it then fails with "service stopped", instead of
// emitting into the closed database (a nil pointer once Close ran).
func TestPoisonAfterTheStopFails(t *testing.T) {
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{URL: "memory://"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, run := range []bool{true, false} {
		h, err := servicehost.Open(ctx, echoSpec(), servicehost.Config{Queue: q, DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if run {
			stop, done := runHost(ctx, t, h)
			stop()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
		} else {
			h.Close()
		}
		err = h.Faults().Set(faults.Poison, "true")
		if !errors.Is(err, admin.ErrUnavailable) || !strings.Contains(err.Error(), "service stopped") {
			t.Errorf("poison after the stop (ran: %v): got %v, want admin.ErrUnavailable saying the service stopped", run, err)
		}
		if h.Faults().Bool(faults.Poison) {
			t.Errorf("poison flag after the stop (ran: %v): got true, want false", run)
		}
	}
}
