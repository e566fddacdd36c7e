package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
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
	"github.com/orderflow/orderflow/pkg/telemetry"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
)

// eventsTopic is the topic the service emits.
const eventsTopic = contracts.TopicPaymentEvents

// traceID is the trace every published command belongs to: the service's
// spans and the events it emits must continue it.
const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

// errCrash is what the fake exit panics with: the handler stops where the
// process would have died, nothing after it runs, and the queue redelivers.
var errCrash = errors.New("injected crash")

type harness struct {
	t      *testing.T
	svc    *service
	reg    *faults.Registry
	q      *queue.Queue
	events <-chan *message.Message
	exits  atomic.Int32
}

// start runs the service on a fresh queue file and database, and subscribes
// a test consumer group to its events.
func start(t *testing.T) *harness {
	t.Helper()
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	dir := t.TempDir()
	cfg := config{
		QueueURL: "sqlite://" + filepath.Join(dir, "queue.db"), DataDir: dir, HTTPAddr: "127.0.0.1:0",
		Concurrency: 1, MaxAttempts: 3, LogLevel: slog.LevelWarn,
	}
	ctx, cancel := context.WithCancel(context.Background())
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: serviceName, LogWriter: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t}
	h.reg, err = faults.New(faults.Config{Flags: faults.ServiceFlags(serviceName), Exit: func(int) {
		h.exits.Add(1)
		// A restarted process starts with the crash points off.
		_ = h.reg.Set(faults.CrashAfterCommit, "false")
		_ = h.reg.Set(faults.CrashMidHandler, "false")
		panic(errCrash)
	}})
	if err != nil {
		t.Fatal(err)
	}
	h.svc, err = newService(ctx, cfg, tel, h.reg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.svc.run(ctx) }()

	h.q, err = queue.Open(ctx, queue.Config{URL: cfg.QueueURL})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := h.q.Backend().Subscriber(backend.SubscriberConfig{ConsumerGroup: "test"})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(ctx, eventsTopic)
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
	case <-h.svc.router.Running():
	case <-time.After(10 * time.Second):
		t.Fatal("router not running after 10s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: got %v, want nil after cancel", err)
		}
		_ = sub.Close()
		_ = h.q.Close()
		_ = tel.Shutdown(context.Background())
	})
	return h
}

// publish sends m to its topic with the given UUID (a new one if empty).
func (h *harness) publish(m contracts.Message, uuid string) string {
	h.t.Helper()
	payload, meta, err := contracts.Encode(m)
	if err != nil {
		h.t.Fatal(err)
	}
	if uuid == "" {
		uuid = watermill.NewUUID()
	}
	msg := message.NewMessage(uuid, payload)
	for k, v := range meta {
		msg.Metadata.Set(k, v)
	}
	msg.Metadata.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if err := h.q.Publisher().Publish(m.Topic(), msg); err != nil {
		h.t.Fatal(err)
	}
	return uuid
}

// next waits for the next event and decodes it.
func (h *harness) next() (contracts.Message, *message.Message) {
	h.t.Helper()
	select {
	case msg := <-h.events:
		m, err := contracts.Decode(msg.Metadata, msg.Payload)
		if err != nil {
			h.t.Fatalf("event %s: %v", msg.UUID, err)
		}
		return m, msg
	case <-time.After(15 * time.Second):
		h.t.Fatal("no event within 15s")
		return nil, nil
	}
}

// sameTrace fails unless event continues the trace of the commands.
func (h *harness) sameTrace(event *message.Message) {
	h.t.Helper()
	if tp := event.Metadata.Get("traceparent"); !strings.Contains(tp, traceID) {
		h.t.Errorf("event traceparent: got %q, want trace %s", tp, traceID)
	}
}

// quiet fails if an event arrives within d.
func (h *harness) quiet(d time.Duration) {
	h.t.Helper()
	select {
	case msg := <-h.events:
		h.t.Errorf("unexpected event %s %s", msg.Metadata.Get(contracts.MetadataType), msg.Payload)
	case <-time.After(d):
	}
}

func (h *harness) getJSON(path string, v any) int {
	h.t.Helper()
	resp, err := http.Get("http://" + h.svc.addr() + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode
}

// send sends a JSON body to the admin API and returns the status.
func (h *harness) send(method, path, body string) int {
	h.t.Helper()
	req, err := http.NewRequest(method, "http://"+h.svc.addr()+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// waitDeadLetter waits until the service's group dead-lettered message id
// of topic, after attempts deliveries.
func (h *harness) waitDeadLetter(topic, id string, attempts int) {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var dls []struct {
			MessageUUID   string `json:"message_uuid"`
			ConsumerGroup string `json:"consumer_group"`
			Attempts      int    `json:"attempts"`
		}
		h.getJSON("/dlq?topic="+topic, &dls)
		if len(dls) == 1 {
			if dls[0].MessageUUID != id || dls[0].ConsumerGroup != serviceName || dls[0].Attempts != attempts {
				h.t.Errorf("dead letter: got %+v, want %s of group %s after %d attempts", dls[0], id, serviceName, attempts)
			}
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("dead letters: got %d, want 1", len(dls))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publishRaw publishes an undecodable command claiming type typ.
func (h *harness) publishRaw(topic, typ string) string {
	h.t.Helper()
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order_id":`))
	msg.Metadata.Set(contracts.MetadataType, typ)
	msg.Metadata.Set(contracts.MetadataSchemaVersion, "1")
	if err := h.q.Publisher().Publish(topic, msg); err != nil {
		h.t.Fatal(err)
	}
	return msg.UUID
}

// poison sets the poison fault and expects one undecodable event.
func (h *harness) poison() {
	h.t.Helper()
	if code := h.send(http.MethodPut, "/faults/"+faults.Poison, `{"value":true}`); code != 200 {
		h.t.Fatalf("PUT /faults/poison: got %d, want 200", code)
	}
	select {
	case msg := <-h.events:
		if _, err := contracts.Decode(msg.Metadata, msg.Payload); !errors.Is(err, contracts.ErrUndecodable) {
			h.t.Errorf("poison: got a decodable message (%v), want an undecodable one", err)
		}
	case <-time.After(15 * time.Second):
		h.t.Fatal("no poison message within 15s")
	}
	if h.reg.Bool(faults.Poison) {
		h.t.Error("poison flag: got true, want it back to false")
	}
}
