package servicehost_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/pkg/telemetry"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"

	"github.com/orderflow/orderflow/pkg/logtest"
)

// observedHost is a Host on a SQLite queue of its own, with the telemetry
// of a service (spans made but not exported), running until the test
// ends.
type observedHost struct {
	host     *servicehost.Host
	tel      *telemetry.Telemetry
	logs     *logtest.Buffer
	queueURL string
}

// startObserved opens spec on a fresh queue file and data directory,
// with telemetry as servicecmd sets it up, and runs it until the test
// ends.
func startObserved(t *testing.T, spec servicehost.Spec, maxAttempts int) *observedHost {
	t.Helper()
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	dir := t.TempDir()
	o := &observedHost{logs: &logtest.Buffer{}, queueURL: "sqlite://" + filepath.Join(dir, "queue.db")}
	ctx := context.Background()
	var err error
	if o.tel, err = telemetry.Setup(ctx, telemetry.Config{ServiceName: spec.Name, LogWriter: o.logs}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.tel.Shutdown(context.Background()) })
	if o.host, err = servicehost.Open(ctx, spec, servicehost.Config{
		QueueURL: o.queueURL, DataDir: dir, MaxAttempts: maxAttempts,
		Logger: o.tel.Logger, TracerProvider: o.tel.TracerProvider, MeterProvider: o.tel.MeterProvider,
		Propagator: o.tel.Propagator, MetricsHandler: o.tel.MetricsHandler,
	}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- o.host.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil after cancel", err)
		}
	})
	select {
	case <-o.host.Running():
	case <-time.After(10 * time.Second):
		t.Fatal("handlers not running after 10s")
	}
	return o
}

// failingSpec is a service whose handler of inventory.commands always
// fails.
func failingSpec() servicehost.Spec {
	spec := echoSpec()
	spec.Wire = func(_ context.Context, p servicehost.Parts) (func(*echo.Echo), error) {
		p.Router.Handle("reserve", contracts.TopicInventoryCommands, func(*message.Message) error {
			return errors.New("stock store unavailable")
		})
		return nil, nil
	}
	return spec
}

// The records of a command's failed attempts and of its dead letter carry
// the command's trace id, order id and type, as the service's own records do,
// and only the dead letter is an error: an attempt that will be retried
// is a warning, and Watermill's router no longer writes an error record
// for every attempt.
func TestRetriesAndDeadLettersAreLoggedWithTheTraceAndTheOrder(t *testing.T) {
	o := startObserved(t, failingSpec(), 2)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	q, err := queue.Open(context.Background(), queue.Config{URL: o.queueURL})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	payload, meta, err := contracts.Encode(contracts.ReserveStock{OrderID: "o-1", Items: []contracts.Item{{SKU: "SKU-1", Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	cmd := message.NewMessage("c-1", payload)
	for k, v := range meta {
		cmd.Metadata.Set(k, v)
	}
	cmd.Metadata.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if err := q.Publisher().Publish(contracts.TopicInventoryCommands, cmd); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		dls, err := q.Backend().DeadLetters().List(context.Background(), backend.DeadLetterFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters: got %d within 15s, want 1", len(dls))
		}
		time.Sleep(10 * time.Millisecond)
	}

	type line struct{ level, msg string }
	var got []line
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got = got[:0]
		for _, rec := range o.logs.Records(t) {
			level, _ := rec["level"].(string)
			msg, _ := rec["msg"].(string)
			if level == "ERROR" || level == "WARN" {
				got = append(got, line{level, msg})
				if rec["trace_id"] != traceID || rec["order_id"] != "o-1" || rec["message_id"] != "c-1" || rec["type"] != contracts.TypeReserveStock {
					t.Errorf("%s record %q: got trace_id %v, order_id %v, message_id %v, type %v; want %s, o-1, c-1, %s",
						level, msg, rec["trace_id"], rec["order_id"], rec["message_id"], rec["type"], traceID, contracts.TypeReserveStock)
				}
			}
		}
		if len(got) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	want := []line{{"WARN", "Handler failed; will retry"}, {"ERROR", "Message dead-lettered"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("warnings and errors: got %v, want %v", got, want)
	}
}

// After a start, before any message, /metrics has the retry and
// dead-letter counters of the topic the service handles, at 0: the first
// retry or dead letter is then an increase that increase() and alerts
// see, not the first sample of a new series.
func TestRetryAndDeadLetterCountersAreExportedAtZeroFromTheStart(t *testing.T) {
	o := startObserved(t, failingSpec(), 2)
	srv := httptest.NewServer(o.tel.MetricsHandler)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		metric string
		labels []string // label="value" pairs the sample must have
	}{
		{"queue_messages_retried_total", []string{`messaging_destination_name="inventory.commands"`, `messaging_consumer_group_name="inventory"`}},
		{"queue_messages_dead_lettered_total", []string{`messaging_destination_name="inventory.commands"`, `messaging_consumer_group_name="inventory"`}},
		{"orderflow_messages_retried_total", []string{`topic="inventory.commands"`}},
		{"orderflow_messages_dead_lettered_total", []string{`topic="inventory.commands"`}},
	}
	for _, tc := range tests {
		var samples []string
		found := false
		for l := range strings.Lines(string(body)) {
			if !strings.HasPrefix(l, tc.metric+"{") {
				continue
			}
			l = strings.TrimSpace(l)
			samples = append(samples, l)
			labelled := true
			for _, label := range tc.labels {
				labelled = labelled && strings.Contains(l, label)
			}
			found = found || (labelled && strings.HasSuffix(l, " 0"))
		}
		if !found {
			t.Errorf("%s: got samples %q, want one with %v at 0", tc.metric, samples, tc.labels)
		}
	}
}
