package queue_test

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/postgres/pgtest"
	"github.com/orderflow/orderflow/queue/retry"
)

func TestMetricsCountOutcomesRetriesDeadLettersAndDepth(t *testing.T) {
	q, reader := openMetered(t)
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g", Retry: fastRetry(2)})
	if err != nil {
		t.Fatal(err)
	}
	r.Handle("h", "jobs", func(msg *message.Message) error {
		if msg.UUID == "bad" {
			return errors.New("nope")
		}
		return nil
	})
	runRouter(t, r)
	if err := q.Publisher().Publish("jobs", message.NewMessage("good", nil), message.NewMessage("bad", nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead letter", func() bool { return len(deadLetters(t, q)) == 1 })
	// The retry middleware counts a dead letter once it is stored: wait
	// for that count too.
	var sums, gauges map[string]int64
	waitFor(t, "the dead letter's counts", func() bool {
		sums, gauges = collectMetrics(t, reader)
		return sums[queue.MetricDeadLettered] == 1 && sums[queue.MetricProcessed+"/error"] == 2
	})
	want := map[string]int64{
		queue.MetricProcessed + "/ok":    1, // good
		queue.MetricProcessed + "/error": 2, // both attempts of bad: retried, then dead-lettered
		queue.MetricRetried:              1,
		queue.MetricDeadLettered:         1,
	}
	for k, v := range want {
		if sums[k] != v {
			t.Errorf("%s: got %d, want %d (all sums: %v)", k, sums[k], v, sums)
		}
	}
	if got := gauges[queue.MetricDeadLetters]; got != 1 {
		t.Errorf("%s: got %d, want 1", queue.MetricDeadLetters, got)
	}
	if _, ok := gauges[queue.MetricDepth]; !ok {
		t.Errorf("%s not reported (gauges: %v)", queue.MetricDepth, gauges)
	}
}

// A message whose previous delivery was abandoned counts as a run alone
// when its handler runs, and as a dead letter, without a run, once its
// runs alone were abandoned MaxAbandoned times in a row.
func TestMetricsCountRunsAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, reader := openMeteredAt(t, path)
	registerGroup(t, q, "g", "jobs")
	if err := q.Publisher().Publish("jobs", message.NewMessage("normal", nil), message.NewMessage("suspect", nil), message.NewMessage("culprit", nil)); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// As consumers that died left them: the suspect in a run beside
	// others, the culprit in its second run alone.
	for uuid, soloRuns := range map[string]int{"suspect": 0, "culprit": 2} {
		if _, err := db.Exec(`UPDATE queue_deliveries SET in_flight = 1, attempts = 1, solo_runs = ?
			WHERE message_id = (SELECT id FROM queue_messages WHERE uuid = ?)`, soloRuns, uuid); err != nil {
			t.Fatal(err)
		}
	}
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	r.Handle("h", "jobs", func(*message.Message) error { return nil })
	runRouter(t, r)

	var sums map[string]int64
	waitFor(t, "every message's counts", func() bool {
		sums, _ = collectMetrics(t, reader)
		return sums[queue.MetricProcessed+"/ok"] == 2 && sums[queue.MetricDeadLettered] == 1
	})
	if got, want := sums[queue.MetricRanAlone], int64(1); got != want {
		t.Errorf("%s: got %d, want %d (the suspect; all sums: %v)", queue.MetricRanAlone, got, want, sums)
	}
}

// openMetered opens a SQLite queue whose metrics go to the reader it
// returns.
func openMetered(t *testing.T) (*queue.Queue, *sdkmetric.ManualReader) {
	t.Helper()
	return openMeteredAt(t, filepath.Join(t.TempDir(), "q.db"))
}

// openMeteredAt is openMetered on the SQLite file at path.
func openMeteredAt(t *testing.T, path string) (*queue.Queue, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	q, err := queue.Open(context.Background(), queue.Config{URL: "sqlite://" + path, MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q, reader
}

// collectMetrics returns the int64 sums (by name, and name/outcome where
// there is an outcome attribute) and gauges (by name) reader holds now.
func collectMetrics(t *testing.T, reader sdkmetric.Reader) (sums, gauges map[string]int64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sums = map[string]int64{}
	gauges = map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					key := m.Name
					if v, ok := p.Attributes.Value("outcome"); ok {
						key += "/" + v.AsString()
					}
					if v, ok := p.Attributes.Value("operation"); ok {
						key += "/" + v.AsString()
					}
					sums[key] += p.Value
				}
			case metricdata.Sum[float64]: // seconds, kept as nanoseconds
				for _, p := range d.DataPoints {
					sums[m.Name] += int64(p.Value * 1e9)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					gauges[m.Name] += p.Value
				}
			}
		}
	}
	return sums, gauges
}

// The SQLite backend reports its write transactions and what they carried;
// with more operations than transactions when group commit joins them.
func TestMetricsCountSQLiteWriteTransactions(t *testing.T) {
	q, reader := openMetered(t)
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	r.Handle("h", "jobs", func(*message.Message) error { return nil })
	runRouter(t, r)
	if err := q.Publisher().Publish("jobs", message.NewMessage("a", nil), message.NewMessage("b", nil), message.NewMessage("c", nil)); err != nil {
		t.Fatal(err)
	}
	var sums map[string]int64
	waitFor(t, "the three acks", func() bool {
		sums, _ = collectMetrics(t, reader)
		return sums[queue.MetricProcessed+"/ok"] == 3 && sums[queue.MetricWriteOperations+"/ack"] >= 1
	})
	txs := sums[queue.MetricWriteTransactions]
	var ops int64
	for _, op := range []string{"publish", "claim", "ack", "subscribe"} {
		n := sums[queue.MetricWriteOperations+"/"+op]
		if n < 1 {
			t.Errorf("%s/%s: got %d, want at least 1 (all sums: %v)", queue.MetricWriteOperations, op, n, sums)
		}
		ops += n
	}
	if got := sums[queue.MetricWriteOperations+"/publish"]; got != 1 {
		t.Errorf("publish operations for one Publish of three messages: got %d, want 1", got)
	}
	if txs < 1 || txs > ops {
		t.Errorf("write transactions: got %d, want between 1 and the %d operations they carried", txs, ops)
	}
	for _, name := range []string{queue.MetricWriteLockWait, queue.MetricWriteLockHeld} {
		if got := sums[name]; got <= 0 {
			t.Errorf("%s after %d transactions: got %d ns, want more than 0", name, txs, got)
		}
	}
}

// series returns the data points of the int64 counter name that reader
// holds now, by "topic group" (and " outcome" where there is one).
func series(t *testing.T, reader sdkmetric.Reader, name string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			d, ok := m.Data.(metricdata.Sum[int64])
			if !ok || m.Name != name {
				continue
			}
			for _, p := range d.DataPoints {
				topic, _ := p.Attributes.Value("messaging.destination.name")
				group, _ := p.Attributes.Value("messaging.consumer.group.name")
				key := topic.AsString() + " " + group.AsString()
				if v, ok := p.Attributes.Value("outcome"); ok {
					key += " " + v.AsString()
				}
				out[key] = p.Value
			}
		}
	}
	return out
}

// The counters of every topic the router handles are exported at 0 from
// the handler's registration on: the first retry or dead letter after a
// start is then an increase (increase(), rate() and alerts see it), not
// the first sample of a series that did not exist.
func TestCountersStartAtZeroForEveryTopicHandled(t *testing.T) {
	q, reader := openMetered(t)
	var handled []string
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "billing", OnHandle: func(topic string) { handled = append(handled, topic) }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Handle("charge", "payments", func(*message.Message) error { return nil })
	r.Handle("refund", "refunds", func(*message.Message) error { return nil })

	tests := []struct {
		name string
		want map[string]int64
	}{
		{queue.MetricRetried, map[string]int64{"payments billing": 0, "refunds billing": 0}},
		{queue.MetricDeadLettered, map[string]int64{"payments billing": 0, "refunds billing": 0}},
		{queue.MetricRanAlone, map[string]int64{"payments billing": 0, "refunds billing": 0}},
		{queue.MetricProcessed, map[string]int64{"payments billing ok": 0, "payments billing error": 0, "refunds billing ok": 0, "refunds billing error": 0}},
	}
	for _, tc := range tests {
		if got := series(t, reader, tc.name); !maps.Equal(got, tc.want) {
			t.Errorf("%s before any message: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if want := []string{"payments", "refunds"}; !slices.Equal(handled, want) {
		t.Errorf("OnHandle: got %q, want %q", handled, want)
	}
}

// A row of a PostgreSQL topic table that the backend cannot read is
// dead-lettered by the backend itself, not by the retry middleware: it
// counts as a dead letter all the same, in the queue's metric and for
// the router's caller (Retry.OnDeadLetter).
func TestMetricsCountTheDeadLettersOfUnreadableRows(t *testing.T) {
	url := pgtest.SchemaURL(t, "queue_metrics")
	reader := sdkmetric.NewManualReader()
	q, err := queue.Open(context.Background(), queue.Config{URL: url, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	deadTopics := make(chan string, 1)
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "billing", Retry: retry.Config{OnDeadLetter: func(topic string) { deadTopics <- topic }}})
	if err != nil {
		t.Fatal(err)
	}
	r.Handle("charge", "payments", func(*message.Message) error { return nil })
	runRouter(t, r)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// As a writer other than the queue's publisher might: metadata that
	// is no JSON object of strings.
	if _, err := db.Exec(`INSERT INTO "watermill_payments" (uuid, payload, metadata, transaction_id)
		VALUES ('unreadable', 'x', '[1,2]', pg_current_xact_id())`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead letter", func() bool { return len(deadLetters(t, q)) == 1 })
	if dl := deadLetters(t, q)[0]; dl.Metadata[retry.MetadataDeadLetterReason] != retry.ReasonUnreadable {
		t.Fatalf("dead letter: got reason %q, want %q", dl.Metadata[retry.MetadataDeadLetterReason], retry.ReasonUnreadable)
	}
	waitFor(t, "the dead letter's count", func() bool { return series(t, reader, queue.MetricDeadLettered)["payments billing"] == 1 })
	select {
	case got := <-deadTopics:
		if got != "payments" {
			t.Errorf("Retry.OnDeadLetter: got topic %q, want payments", got)
		}
	case <-time.After(5 * time.Second):
		t.Error("Retry.OnDeadLetter: not called within 5s of the count")
	}
}

// A failed Open leaves no metric callback behind: the queue gauges'
// callback reads the backend Open has closed.
func TestOpenThatFailsToRegisterItsMetricsUnregistersTheGauges(t *testing.T) {
	mp := &refusingMeterProvider{refuse: 2} // the SQLite write counters'
	q, err := queue.Open(context.Background(), queue.Config{
		URL: "sqlite://" + filepath.Join(t.TempDir(), "q.db"), MeterProvider: mp,
	})
	if err == nil {
		_ = q.Close()
		t.Fatal("Open: got no error, want the refused registration's")
	}
	if !errors.Is(err, errRefused) {
		t.Errorf("Open: got %v, want an error wrapping %v", err, errRefused)
	}
	if len(mp.registered) != 1 {
		t.Fatalf("registrations before the refused one: got %d, want 1 (the queue gauges)", len(mp.registered))
	}
	if !mp.registered[0].unregistered {
		t.Error("the queue gauges' callback is still registered after Open failed")
	}
}

var errRefused = errors.New("registration refused")

// refusingMeterProvider is a no-op MeterProvider whose refuse-th
// RegisterCallback fails; it records the registrations made. Not for
// concurrent use.
type refusingMeterProvider struct {
	noop.MeterProvider
	refuse     int
	calls      int
	registered []*recordedRegistration
}

func (p *refusingMeterProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return refusingMeter{Meter: p.MeterProvider.Meter(name, opts...), p: p}
}

type refusingMeter struct {
	metric.Meter
	p *refusingMeterProvider
}

func (m refusingMeter) RegisterCallback(metric.Callback, ...metric.Observable) (metric.Registration, error) {
	m.p.calls++
	if m.p.calls == m.p.refuse {
		return nil, errRefused
	}
	r := &recordedRegistration{}
	m.p.registered = append(m.p.registered, r)
	return r, nil
}

type recordedRegistration struct {
	embedded.Registration
	unregistered bool
}

func (r *recordedRegistration) Unregister() error {
	r.unregistered = true
	return nil
}
