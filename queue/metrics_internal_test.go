package queue

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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
