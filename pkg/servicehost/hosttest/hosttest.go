// Package hosttest runs one worker service (a servicehost.Host) in a test
// against a fresh SQLite queue file and data directory, publishes commands to
// it and reads the events it emits, for the services' component tests:
//
//	h := hosttest.Start(t, hosttest.Config{Name: "payment", Events: contracts.TopicPaymentEvents, New: service.New})
//	id := h.Publish(contracts.ChargePayment{…}, "")
//	m, msg := h.Next() // the next event, decoded
//
// The service's crash points panic instead of exiting (the queue's router
// recovers, so the message is redelivered as after a crash) and count in
// Exits; a restarted process would start with them off, so they are
// switched off after firing.
package hosttest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/pkg/telemetry"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
)

// TraceID is the trace every published command belongs to: the service's
// spans and the events it emits must continue it (see SameTrace).
const TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"

// Wait bounds every wait of the harness.
const Wait = 15 * time.Second

// ErrCrash is what a crash point panics with: the handler stops where the
// process would have died, nothing after it runs, and the queue redelivers.
var ErrCrash = errors.New("injected crash")

// Config says which service to start.
type Config struct {
	// Name is the service's name (fault flags, consumer group).
	Name string
	// Events is the topic the service emits; the harness reads it.
	Events string
	// New builds the service from the harness's config (the service
	// package's New).
	New func(ctx context.Context, cfg servicehost.Config) (*servicehost.Host, error)
}

// Harness is a running service, a queue connection of the test's own and
// a consumer group "test" on the service's events.
type Harness struct {
	T      *testing.T
	Faults *faults.Registry
	Queue  *queue.Queue
	name   string
	svc    *servicehost.Host
	events <-chan *message.Message
	exits  atomic.Int32
}

// Start runs the service on a fresh queue file and data directory (one
// command at a time, 3 attempts before dead-lettering) until the test ends,
// and subscribes a test consumer group to its events.
func Start(t *testing.T, cfg Config) *Harness {
	t.Helper()
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	dir := t.TempDir()
	queueURL := "sqlite://" + filepath.Join(dir, "queue.db")
	ctx, cancel := context.WithCancel(context.Background())
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: cfg.Name, LogWriter: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	h := &Harness{T: t, name: cfg.Name}
	h.Faults, err = faults.New(faults.Config{Flags: faults.ServiceFlags(cfg.Name), Exit: func(int) {
		h.exits.Add(1)
		_ = h.Faults.Set(faults.CrashAfterCommit, "false")
		_ = h.Faults.Set(faults.CrashMidHandler, "false")
		panic(ErrCrash)
	}})
	if err != nil {
		t.Fatal(err)
	}
	h.svc, err = cfg.New(ctx, servicehost.Config{
		QueueURL: queueURL, DataDir: dir, HTTPAddr: "127.0.0.1:0", Concurrency: 1, MaxAttempts: 3,
		Logger: tel.Logger, TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider,
		Propagator: tel.Propagator, MetricsHandler: tel.MetricsHandler, Faults: h.Faults,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.svc.Run(ctx) }()

	h.Queue, err = queue.Open(ctx, queue.Config{URL: queueURL})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := h.Queue.Backend().Subscriber(backend.SubscriberConfig{ConsumerGroup: "test"})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(ctx, cfg.Events)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan *message.Message, 100)
	go func() {
		for m := range msgs {
			m.Ack()
			events <- m
		}
	}()
	h.events = events
	select {
	case <-h.svc.Running():
	case <-time.After(10 * time.Second):
		t.Fatal("router not running after 10s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: got %v, want nil after cancel", err)
		}
		_ = sub.Close()
		_ = h.Queue.Close()
		_ = tel.Shutdown(context.Background())
	})
	return h
}

// Exits counts the crash points that fired.
func (h *Harness) Exits() int { return int(h.exits.Load()) }

// Publish sends m to its topic with the given UUID (a new one if empty),
// in trace TraceID, and returns the UUID.
func (h *Harness) Publish(m contracts.Message, uuid string) string {
	h.T.Helper()
	payload, meta, err := contracts.Encode(m)
	if err != nil {
		h.T.Fatal(err)
	}
	if uuid == "" {
		uuid = watermill.NewUUID()
	}
	msg := message.NewMessage(uuid, payload)
	for k, v := range meta {
		msg.Metadata.Set(k, v)
	}
	msg.Metadata.Set("traceparent", "00-"+TraceID+"-00f067aa0ba902b7-01")
	if err := h.Queue.Publisher().Publish(m.Topic(), msg); err != nil {
		h.T.Fatal(err)
	}
	return uuid
}

// PublishRaw publishes an undecodable message claiming type typ to topic.
func (h *Harness) PublishRaw(topic, typ string) string {
	h.T.Helper()
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order_id":`))
	msg.Metadata.Set(contracts.MetadataType, typ)
	msg.Metadata.Set(contracts.MetadataSchemaVersion, "1")
	if err := h.Queue.Publisher().Publish(topic, msg); err != nil {
		h.T.Fatal(err)
	}
	return msg.UUID
}

// CrashOnce switches crash point on (faults.CrashMidHandler or
// faults.CrashAfterCommit), publishes m and expects the process to "exit"
// once, the queue to redeliver m and the service to answer with exactly
// one event of type want.
func (h *Harness) CrashOnce(point string, m contracts.Message, want string) {
	h.T.Helper()
	if err := h.Faults.Set(point, "true"); err != nil {
		h.T.Fatal(err)
	}
	h.Publish(m, "")
	if got, _ := h.Next(); got.MessageType() != want {
		h.T.Fatalf("event: got %s, want %s", got.MessageType(), want)
	}
	h.Quiet(300 * time.Millisecond)
	if got := h.Exits(); got != 1 {
		h.T.Errorf("exits: got %d, want 1", got)
	}
}

// Next waits for the next event and decodes it.
func (h *Harness) Next() (contracts.Message, *message.Message) {
	h.T.Helper()
	select {
	case msg := <-h.events:
		m, err := contracts.Decode(msg.Metadata, msg.Payload)
		if err != nil {
			h.T.Fatalf("event %s: %v", msg.UUID, err)
		}
		return m, msg
	case <-time.After(Wait):
		h.T.Fatalf("no event within %s", Wait)
		return nil, nil
	}
}

// SameTrace fails unless event continues the trace of the commands.
func (h *Harness) SameTrace(event *message.Message) {
	h.T.Helper()
	if tp := event.Metadata.Get("traceparent"); !strings.Contains(tp, TraceID) {
		h.T.Errorf("event traceparent: got %q, want trace %s", tp, TraceID)
	}
}

// Quiet fails if an event arrives within d.
func (h *Harness) Quiet(d time.Duration) {
	h.T.Helper()
	select {
	case msg := <-h.events:
		h.T.Errorf("unexpected event %s %s", msg.Metadata.Get(contracts.MetadataType), msg.Payload)
	case <-time.After(d):
	}
}

// GetJSON gets path from the service's HTTP server into v and returns the
// status.
func (h *Harness) GetJSON(path string, v any) int {
	h.T.Helper()
	resp, err := http.Get("http://" + h.svc.HTTPAddr() + path)
	if err != nil {
		h.T.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		h.T.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode
}

// GetOK gets path into v and fails the test unless the status is 200.
func (h *Harness) GetOK(path string, v any) {
	h.T.Helper()
	if code := h.GetJSON(path, v); code != http.StatusOK {
		h.T.Fatalf("GET %s: got %d, want 200", path, code)
	}
}

// CheckListLimit checks the ?limit of each list at path (a GET answering
// a JSON array): limit=1 returns one entry (the list must hold two or
// more), and 0, 100001, -1 and a non-number are a 400 problem naming the
// parameter.
func (h *Harness) CheckListLimit(paths ...string) {
	h.T.Helper()
	for _, path := range paths {
		var page []json.RawMessage
		if code := h.GetJSON(path+"?limit=1", &page); code != http.StatusOK || len(page) != 1 {
			h.T.Errorf("GET %s?limit=1: got %d with %d entries, want 200 with 1", path, code, len(page))
		}
		for _, bad := range []string{"0", "100001", "-1", "x"} {
			var problem struct {
				Field string `json:"field"`
			}
			if code := h.GetJSON(path+"?limit="+bad, &problem); code != http.StatusBadRequest || problem.Field != "limit" {
				h.T.Errorf("GET %s?limit=%s: got %d naming %q, want 400 naming limit", path, bad, code, problem.Field)
			}
		}
	}
}

// Send sends a JSON body to the service's HTTP server and returns the
// status.
func (h *Harness) Send(method, path, body string) int {
	h.T.Helper()
	code, _ := h.SendWithHeader(method, path, body, nil)
	return code
}

// SendWithHeader is Send with more request headers; it returns the
// response's headers too.
func (h *Harness) SendWithHeader(method, path, body string, header http.Header) (int, http.Header) {
	h.T.Helper()
	req, err := http.NewRequest(method, "http://"+h.svc.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		h.T.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.T.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// WaitDeadLetter waits until the service's group dead-lettered message id
// of topic, after attempts deliveries, and checks it is the only one.
func (h *Harness) WaitDeadLetter(topic, id string, attempts int) {
	h.T.Helper()
	deadline := time.Now().Add(Wait)
	for {
		var dls []struct {
			MessageUUID   string `json:"message_uuid"`
			ConsumerGroup string `json:"consumer_group"`
			Attempts      int    `json:"attempts"`
		}
		h.GetJSON("/dlq?topic="+topic, &dls)
		if len(dls) == 1 {
			if dls[0].MessageUUID != id || dls[0].ConsumerGroup != h.name || dls[0].Attempts != attempts {
				h.T.Errorf("dead letter: got %+v, want %s of group %s after %d attempts", dls[0], id, h.name, attempts)
			}
			return
		}
		if time.Now().After(deadline) {
			h.T.Fatalf("dead letters: got %d, want 1", len(dls))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Poison sets the poison fault through the admin API and expects one
// undecodable event, and the flag back to false.
func (h *Harness) Poison() {
	h.T.Helper()
	if code := h.Send(http.MethodPut, "/faults/"+faults.Poison, `{"value":true}`); code != http.StatusOK {
		h.T.Fatalf("PUT /faults/poison: got %d, want 200", code)
	}
	select {
	case msg := <-h.events:
		if _, err := contracts.Decode(msg.Metadata, msg.Payload); !errors.Is(err, contracts.ErrUndecodable) {
			h.T.Errorf("poison: got a decodable message (%v), want an undecodable one", err)
		}
	case <-time.After(Wait):
		h.T.Fatalf("no poison message within %s", Wait)
	}
	if h.Faults.Bool(faults.Poison) {
		h.T.Error("poison flag: got true, want it back to false")
	}
}
