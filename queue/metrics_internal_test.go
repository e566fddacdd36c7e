package queue

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/orderflow/orderflow/queue/backend"
)

// A handler run of 2 ms must land in a bucket below 5 ms: the histogram is
// recorded in seconds, so OpenTelemetry's default boundaries (0, 5, 10, …,
// meant for milliseconds) would put it, and every other run, in le="5".
func TestHandlerDurationBucketsAreSeconds(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	ins, err := newInstruments(mp)
	if err != nil {
		t.Fatal(err)
	}
	ins.duration.Record(context.Background(), 0.002)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != MetricDuration {
				continue
			}
			found = true
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok || len(h.DataPoints) != 1 {
				t.Fatalf("%s: got %T with %v, want one float64 histogram point", m.Name, m.Data, m.Data)
			}
			p := h.DataPoints[0]
			// BucketCounts[i] counts values in (Bounds[i-1], Bounds[i]];
			// the last one counts values above the last bound.
			bucket := -1
			for i, n := range p.BucketCounts {
				if n > 0 {
					bucket = i
				}
			}
			if p.Count != 1 || bucket < 0 || bucket >= len(p.Bounds) {
				t.Fatalf("2ms landed in bucket %d of bounds %v (counts %v), want a bounded bucket", bucket, p.Bounds, p.BucketCounts)
			}
			if upper := p.Bounds[bucket]; upper > 0.005 || upper < 0.002 {
				t.Errorf("2ms landed in the bucket le=%g (bounds %v), want one at most 0.005 s", upper, p.Bounds)
			}
			if bucket == 0 || p.Bounds[bucket-1] >= 0.002 {
				t.Errorf("2ms landed in bucket %d of bounds %v, want the bucket that holds 0.002", bucket, p.Bounds)
			}
			if last := p.Bounds[len(p.Bounds)-1]; last < 5 {
				t.Errorf("largest bound %g s, want at least 5 s for handlers slowed by faults", last)
			}
		}
	}
	if !found {
		t.Fatalf("%s not reported", MetricDuration)
	}
}

// blackHoledInspector answers Stats with stats until down is set; then its
// Stats waits for its context to end, as a query to a database the
// network black-holes does.
type blackHoledInspector struct {
	down  atomic.Bool
	stats []backend.TopicStats
}

func (i *blackHoledInspector) Topics(context.Context) ([]string, error) { return nil, nil }

func (i *blackHoledInspector) Stats(ctx context.Context) ([]backend.TopicStats, error) {
	if !i.down.Load() {
		return i.stats, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// A scrape while the database does not answer (GET /metrics, whose
// context has no deadline) returns within the stats query's timeout, with
// the queue gauges' last values, instead of hanging until the database
// answers; the following scrapes within minInterval do not wait at all.
func TestQueueGaugesDoNotHangAScrapeWhileTheDatabaseDoesNot(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	insp := &blackHoledInspector{stats: []backend.TopicStats{{Topic: "orders", DeadLetters: 2,
		Groups: []backend.GroupStats{{ConsumerGroup: "payment", Depth: 7}}}}}
	const timeout = 200 * time.Millisecond
	if _, err := registerQueueGauges(mp, insp, time.Nanosecond, timeout, watermill.NopLogger{}); err != nil {
		t.Fatal(err)
	}
	depth := func() (int64, bool) {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatalf("collect: %v", err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == MetricDepth && len(g.DataPoints) == 1 {
					return g.DataPoints[0].Value, true
				}
			}
		}
		return 0, false
	}
	if d, ok := depth(); !ok || d != 7 {
		t.Fatalf("depth before the outage: got %d (reported %v), want 7", d, ok)
	}
	insp.down.Store(true)
	for i := range 3 {
		done := make(chan struct{})
		var d int64
		var ok bool
		go func() { d, ok = depth(); close(done) }()
		select {
		case <-done:
		case <-time.After(timeout + 2*time.Second):
			t.Fatalf("scrape %d while the database does not answer: still waiting after %s (stats timeout %s)", i+1, timeout+2*time.Second, timeout)
		}
		if !ok || d != 7 {
			t.Errorf("scrape %d while the database does not answer: depth %d (reported %v), want the last value 7", i+1, d, ok)
		}
	}
}
