package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/services/order/service"

	"github.com/orderflow/orderflow/pkg/logtest"
)

// fakeServices answers every saga command with success, as inventory,
// payment and shipping would, through the shared queue.
func fakeServices(t *testing.T, ctx context.Context, q *queue.Queue) {
	t.Helper()
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "fake-services", Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	reply := func(msg *message.Message) error {
		m, err := contracts.Decode(msg.Metadata, msg.Payload)
		if err != nil {
			return queue.Permanent(err)
		}
		var out contracts.Message
		switch m := m.(type) {
		case contracts.ReserveStock:
			//lint:ignore S1016 a command and its event share their fields by coincidence: a conversion would tie them
			out = contracts.StockReserved{OrderID: m.OrderID, Items: m.Items}
		case contracts.ChargePayment:
			out = contracts.PaymentCharged{OrderID: m.OrderID, PaymentID: "p-" + m.OrderID, AmountCents: m.AmountCents, Currency: m.Currency}
		case contracts.ScheduleShipment:
			out = contracts.ShipmentScheduled{OrderID: m.OrderID, ShipmentID: "s-" + m.OrderID, TrackingNumber: "T-1"}
		default:
			return nil
		}
		payload, meta, err := contracts.Encode(out)
		if err != nil {
			return err
		}
		res := message.NewMessage(watermill.NewUUID(), payload)
		for k, v := range meta {
			res.Metadata.Set(k, v)
		}
		res.SetContext(msg.Context())
		return q.Publisher().Publish(out.Topic(), res)
	}
	for _, topic := range []string{contracts.TopicInventoryCommands, contracts.TopicPaymentCommands, contracts.TopicShippingCommands} {
		r.Handle("fake-"+topic, topic, reply)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("fake services: %v", err)
		}
	})
	<-r.Running()
}

// waitReady polls url until it answers 200, for at most 10 s.
func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 10s (last: %v)", url, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	if v != nil {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: decode: %v", url, err)
		}
	}
	return res.StatusCode
}

func TestServiceDrivesAnOrderToCompletionOverTheQueue(t *testing.T) {
	dir := t.TempDir()
	queueURL := "sqlite://" + filepath.Join(dir, "queue.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	q := openQueue(t, queueURL)
	fakeCtx, stopFake := context.WithCancel(ctx)
	defer stopFake()
	fakeServices(t, fakeCtx, q)

	svc, err := service.New(ctx, service.Config{
		QueueURL: queueURL, DataDir: filepath.Join(dir, "order"),
		HTTPAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", StepTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	base := "http://" + svc.HTTPAddr()

	res, err := http.Post(base+"/orders", "application/json",
		strings.NewReader(`{"customer_id":"c-1","items":[{"sku":"SKU-2","quantity":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var placed struct{ ID, Status string }
	_ = json.NewDecoder(res.Body).Decode(&placed)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || placed.ID == "" {
		t.Fatalf("POST /orders: got %d %+v, want 201", res.StatusCode, placed)
	}

	var o struct {
		Status         string `json:"status"`
		SagaStep       string `json:"saga_step"`
		TrackingNumber string `json:"tracking_number"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		getJSON(t, base+"/orders/"+placed.ID, &o)
		if o.Status == "COMPLETED" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o.Status != "COMPLETED" || o.SagaStep != "done" || o.TrackingNumber != "T-1" {
		t.Fatalf("order: got %+v, want COMPLETED with its tracking number", o)
	}

	admin := "http://" + svc.AdminAddr()
	for _, path := range []string{"/healthz", "/readyz", "/faults", "/queue/stats"} {
		if code := getJSON(t, admin+path, nil); code != http.StatusOK {
			t.Errorf("admin GET %s: got %d, want 200", path, code)
		}
	}
	// The order completed, so every message it sent was forwarded: the
	// outbox is empty.
	var ob struct {
		Pending *int64 `json:"pending"`
	}
	if code := getJSON(t, admin+"/outbox", &ob); code != http.StatusOK || ob.Pending == nil || *ob.Pending != 0 {
		t.Errorf("admin GET /outbox: got %d with %v pending, want 200 with 0", code, ob.Pending)
	}
	if code := getJSON(t, base+"/readyz", nil); code != http.StatusOK {
		t.Errorf("GET /readyz: got %d, want 200", code)
	}
	// A query parameter the rebuild does not take is refused, as on every
	// admin route, before anything is rebuilt.
	rq, err := http.Post(admin+"/projections/rebuild?orders=o-1", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var refused struct{ Field, Detail string }
	_ = json.NewDecoder(rq.Body).Decode(&refused)
	rq.Body.Close()
	if rq.StatusCode != http.StatusBadRequest || refused.Field != "orders" {
		t.Errorf("admin rebuild with ?orders=: got %d %+v, want 400 naming orders", rq.StatusCode, refused)
	}
	rb, err := http.Post(admin+"/projections/rebuild", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var rebuilt struct{ Orders int }
	_ = json.NewDecoder(rb.Body).Decode(&rebuilt)
	rb.Body.Close()
	if rb.StatusCode != http.StatusOK || rebuilt.Orders != 1 {
		t.Errorf("admin rebuild: got %d %+v, want 200 and 1 order", rb.StatusCode, rebuilt)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: got %v, want nil after a graceful stop", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the order API still answers after Run returned")
	}
	stopFake()

	// The stopped service's database rebuilds offline.
	n, err := service.RebuildProjections(context.Background(), filepath.Join(dir, "order"))
	if err != nil || n != 1 {
		t.Errorf("RebuildProjections: got %d, %v, want 1", n, err)
	}
}

// A reply handler that outlives the shutdown timeout does not hold up the
// stop: draining the handlers is one stage of it, bounded like the others
// (not by the queue router's default of 30s).
func TestShutdownTimeoutBoundsTheHandlerDrain(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, "memory://")
	// The crash point before the reply's commit blocks, deaf to any
	// context, like a handler stuck where cancellation cannot reach it.
	stuck, release := make(chan struct{}), make(chan struct{})
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags(service.Name), Exit: func(int) {
		close(stuck)
		<-release
	}})
	if err != nil {
		t.Fatal(err)
	}
	const shutdown = 300 * time.Millisecond
	svc, err := service.New(ctx, service.Config{
		Queue: q, DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Faults: reg, ShutdownTimeout: shutdown,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	t.Cleanup(func() { close(release) }) // after Run returned: the handler then fails on the closed database
	base := "http://" + svc.HTTPAddr()

	res, err := http.Post(base+"/orders", "application/json",
		strings.NewReader(`{"customer_id":"c-1","items":[{"sku":"SKU-2","quantity":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var placed struct{ ID string }
	_ = json.NewDecoder(res.Body).Decode(&placed)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /orders: got %d, want 201", res.StatusCode)
	}
	if err := reg.Set(faults.CrashMidHandler, "true"); err != nil {
		t.Fatal(err)
	}
	// The memory queue drops a message published before its topic has a
	// subscriber: wait until the reply handlers run (/readyz), which the
	// order API answering does not prove.
	waitReady(t, "http://"+svc.AdminAddr()+"/readyz")
	payload, meta, err := contracts.Encode(contracts.StockReserved{OrderID: placed.ID, Items: []contracts.Item{{SKU: "SKU-2", Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	for k, v := range meta {
		msg.Metadata.Set(k, v)
	}
	if err := q.Publisher().Publish(contracts.TopicInventoryEvents, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stuck:
	case <-time.After(10 * time.Second):
		t.Fatal("the reply handler did not reach its crash point within 10s")
	}

	start := time.Now()
	stop()
	select {
	case <-done: // the stuck handler's transaction may fail the stop; only its length counts
		if took := time.Since(start); took > 10*shutdown {
			t.Errorf("stop took %v, want about the shutdown timeout %v per stage", took, shutdown)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Run did not return within 15s of its context ending; want about the shutdown timeout %v per stage", shutdown)
	}
}

// A client that stalls in the middle of its request (here: a POST /orders
// whose body never comes) holds up the stop for ShutdownTimeout, then its
// connection is closed: the stop succeeds, and Run returns nil.
func TestAStalledClientDoesNotFailTheStop(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, "memory://")
	const shutdown = 300 * time.Millisecond
	svc, err := service.New(ctx, service.Config{
		Queue: q, DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		ShutdownTimeout: shutdown,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	waitReady(t, "http://"+svc.AdminAddr()+"/readyz")

	conn, err := net.Dial("tcp", svc.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the request is in progress, its body stalled

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run with a stalled client: got %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Run did not return within 15s of its context ending; want about the shutdown timeout %v per stage", shutdown)
	}
	// The server closed the stalled connection: reading it ends (after
	// whatever answer the server gave) rather than waiting for more.
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("reading the stalled client's connection after the stop: got %v, want it closed by the server", err)
	}
}

// Config.MaxOpenOrders reaches POST /orders: 0 takes the default, a
// positive value is the limit; NoOpenOrderLimit means none. No worker
// runs, so every placed order stays open.
func TestMaxOpenOrders(t *testing.T) {
	tests := []struct {
		name    string
		limit   int
		noLimit bool
		orders  int   // placed one after the other
		refused []int // indexes of those that get 503
	}{
		{"limit of two", 2, false, 3, []int{2}},
		{"no limit", 0, true, 3, nil},
		{"zero takes the default (2000), not a limit of zero", 0, false, 3, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			q := openQueue(t, "memory://")
			svc, err := service.New(ctx, service.Config{
				Queue: q, DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", AdminAddr: "off",
				MaxOpenOrders: tc.limit, NoOpenOrderLimit: tc.noLimit,
			})
			if err != nil {
				t.Fatal(err)
			}
			runUntilTheEnd(t, svc)
			var refused []int
			for i := range tc.orders {
				res, err := http.Post("http://"+svc.HTTPAddr()+"/orders", "application/json",
					strings.NewReader(`{"customer_id":"c-1","items":[{"sku":"SKU-2","quantity":1}]}`))
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				switch res.StatusCode {
				case http.StatusCreated:
				case http.StatusServiceUnavailable:
					refused = append(refused, i)
					if res.Header.Get("Retry-After") == "" {
						t.Errorf("order %d: 503 without Retry-After", i)
					}
				default:
					t.Fatalf("order %d: got %d, want 201 or 503", i, res.StatusCode)
				}
			}
			if !slices.Equal(refused, tc.refused) {
				t.Errorf("refused orders: got %v, want %v", refused, tc.refused)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  service.Config
	}{
		{"bad http address", service.Config{HTTPAddr: "nope"}},
		{"negative timeout", service.Config{StepTimeout: -time.Second}},
		{"bad queue URL", service.Config{QueueURL: "redis://x", HTTPAddr: "127.0.0.1:0", AdminAddr: "off"}},
		// No limit is NoOpenOrderLimit, not a negative limit.
		{"negative open-order limit", service.Config{MaxOpenOrders: -1, HTTPAddr: "127.0.0.1:0", AdminAddr: "off"}},
		{"an open-order limit and no limit", service.Config{MaxOpenOrders: 5, NoOpenOrderLimit: true, HTTPAddr: "127.0.0.1:0", AdminAddr: "off"}},
	}
	for _, tc := range tests {
		tc.cfg.DataDir = t.TempDir()
		s, err := service.New(context.Background(), tc.cfg)
		if err == nil {
			s.Close()
			t.Errorf("%s: got nil error, want a refusal", tc.name)
		}
	}
}

// openQueue opens the shared queue at url for the test, closed at its end.
func openQueue(t *testing.T, url string) *queue.Queue {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// The poison fault publishes one unreadable message onto a topic the order
// service emits and that has a consumer to dead-letter it: inventory's
// commands, as a ReserveStock (order.events has no consumer group). The
// inventory service's component test checks that it dead-letters that
// message (servicedb.PoisonMessage).
func TestPoisonGoesToAConsumedTopic(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := openQueue(t, "memory://")
	sub, err := q.Backend().Subscriber(backend.SubscriberConfig{ConsumerGroup: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	received := make(chan *message.Message, 10)
	for _, topic := range []string{contracts.TopicInventoryCommands, contracts.TopicOrderEvents} {
		msgs, err := sub.Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range msgs {
				m.Ack()
				m.Metadata.Set("test_topic", topic)
				received <- m
			}
		}()
	}
	svc, err := service.New(ctx, service.Config{Queue: q, DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	runUntilTheEnd(t, svc)

	req, err := http.NewRequest(http.MethodPut, "http://"+svc.AdminAddr()+"/faults/poison", strings.NewReader(`{"value":true}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("PUT /faults/poison: got %d, want 200", res.StatusCode)
	}
	select {
	case m := <-received:
		if got := m.Metadata.Get("test_topic"); got != contracts.TopicInventoryCommands {
			t.Errorf("poison topic: got %s, want %s (a topic with a consumer to dead-letter it)", got, contracts.TopicInventoryCommands)
		}
		if got := m.Metadata.Get(contracts.MetadataType); got != contracts.TypeReserveStock {
			t.Errorf("poison type: got %q, want %q", got, contracts.TypeReserveStock)
		}
		if _, err := contracts.Decode(m.Metadata, m.Payload); !errors.Is(err, contracts.ErrUndecodable) {
			t.Errorf("poison: got decoding error %v, want ErrUndecodable", err)
		}
		if m.Metadata.Get(servicedb.MetadataPoison) != "true" {
			t.Errorf("poison metadata: got %v, want %s=true", m.Metadata, servicedb.MetadataPoison)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no poison message within 10s")
	}
	if svc.Faults().Bool(faults.Poison) {
		t.Error("poison flag: got true, want it back to false")
	}
}

// runUntilTheEnd runs svc until the test ends; Run must then return nil.
func runUntilTheEnd(t *testing.T, svc *service.Service) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// A service that fails to start on a queue the caller owns (which stays
// open) leaves nothing running: its router's subscriber is closed too.
func TestFailedNewOnASharedQueueLeavesNothingRunning(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "sqlite://"+filepath.Join(dir, "queue.db"))
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	before := goleak.IgnoreCurrent()
	_, err = service.New(context.Background(), service.Config{
		Queue: q, DataDir: filepath.Join(dir, "order"),
		HTTPAddr: "127.0.0.1:0", AdminAddr: taken.Addr().String(),
	})
	if err == nil {
		t.Fatal("New on a taken admin address: got no error")
	}
	if err := goleak.Find(before); err != nil {
		t.Errorf("after a failed New: %v", err)
	}
}

// Watermill's info records (schemas initialised, handlers started, a
// queued message discarded as the forwarder's subscriber closes) are
// start-up and shutdown chatter, logged at debug as the other services do:
// at info, a newcomer read "Discarding queued message" on a clean stop.
func TestWatermillChatterIsLoggedAtDebug(t *testing.T) {
	dir := t.TempDir()
	var logs logtest.Buffer
	svc, err := service.New(context.Background(), service.Config{
		QueueURL: "sqlite://" + filepath.Join(dir, "queue.db"), DataDir: filepath.Join(dir, "order"),
		HTTPAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "order service started") {
		if time.Now().After(deadline) {
			t.Fatal("no start line within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, chatter := range []string{"Initializing subscriber schema", "Starting handler", "Discarding queued message"} {
		if strings.Contains(logs.String(), `"msg":"`+chatter) {
			t.Errorf("watermill's %q logged at info:\n%s", chatter, logs.String())
		}
	}
}
