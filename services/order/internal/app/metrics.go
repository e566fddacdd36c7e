package app

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// Metric names of the order saga.
const (
	MetricOrdersPlaced   = "orderflow.orders.placed"
	MetricOrdersFinished = "orderflow.orders.finished"
	MetricSagaDuration   = "orderflow.saga.duration"
	MetricConflicts      = "orderflow.order.conflicts"
	MetricTimeoutsFired  = "orderflow.order.timeouts"
	MetricOrdersRefused  = "orderflow.orders.refused"
	// MetricOrders is a gauge: the orders in each status now, read from
	// the status counts projection when metrics are collected.
	MetricOrders = "orderflow.orders"
)

// statusKey is the attribute naming an order's status (a terminal one on
// the counters and the saga duration).
const statusKey = attribute.Key("order.status")

type sagaMetrics struct {
	placed    metric.Int64Counter
	finishedN metric.Int64Counter
	duration  metric.Float64Histogram
	conflicts metric.Int64Counter
	timeouts  metric.Int64Counter
	refused   metric.Int64Counter
}

// newSagaMetrics creates the saga's instruments on mp. The counters
// without attributes (placed, conflicts, timeouts, refused) are reported
// at 0 from the start.
func newSagaMetrics(mp metric.MeterProvider) (*sagaMetrics, error) {
	meter := mp.Meter(instrumentationName)
	var m sagaMetrics
	var err error
	if m.placed, err = meter.Int64Counter(MetricOrdersPlaced,
		metric.WithDescription("Orders accepted."), metric.WithUnit("{order}")); err != nil {
		return nil, fmt.Errorf("metric %s: %w", MetricOrdersPlaced, err)
	}
	if m.finishedN, err = meter.Int64Counter(MetricOrdersFinished,
		metric.WithDescription("Orders that reached a terminal status, by status."), metric.WithUnit("{order}")); err != nil {
		return nil, fmt.Errorf("metric %s: %w", MetricOrdersFinished, err)
	}
	if m.duration, err = meter.Float64Histogram(MetricSagaDuration,
		metric.WithDescription("Time from placing an order to its terminal status."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120)); err != nil {
		return nil, fmt.Errorf("metric %s: %w", MetricSagaDuration, err)
	}
	if m.conflicts, err = meter.Int64Counter(MetricConflicts,
		metric.WithDescription("Optimistic-concurrency conflicts retried."), metric.WithUnit("{conflict}")); err != nil {
		return nil, fmt.Errorf("metric %s: %w", MetricConflicts, err)
	}
	if m.timeouts, err = meter.Int64Counter(MetricTimeoutsFired,
		metric.WithDescription("Step deadlines that fired and changed an order."), metric.WithUnit("{timeout}")); err != nil {
		return nil, fmt.Errorf("metric %s: %w", MetricTimeoutsFired, err)
	}
	if m.refused, err = meter.Int64Counter(MetricOrdersRefused,
		metric.WithDescription("Orders refused because too many were open (MaxOpenOrders)."), metric.WithUnit("{order}")); err != nil {
		return nil, fmt.Errorf("metric %s: %w", MetricOrdersRefused, err)
	}
	// The counters without attributes start at 0, so that they are
	// exported (and a rate or an alert on them works) before the first
	// order, refusal, timeout or conflict.
	for _, c := range []metric.Int64Counter{m.placed, m.conflicts, m.timeouts, m.refused} {
		c.Add(context.Background(), 0)
	}
	return &m, nil
}

func (m *sagaMetrics) finished(ctx context.Context, status domain.Status, d time.Duration) {
	attrs := metric.WithAttributes(statusKey.String(string(status)))
	m.finishedN.Add(ctx, 1, attrs)
	m.duration.Record(ctx, d.Seconds(), attrs)
}

// registerStatusGauge reports MetricOrders from h (every status, zeros
// included) whenever mp's metrics are collected. The projection is one
// row per status, so the read is cheap enough for every scrape.
func registerStatusGauge(mp metric.MeterProvider, h StatusCountsHandler) (metric.Registration, error) {
	meter := mp.Meter(instrumentationName)
	gauge, err := meter.Int64ObservableGauge(MetricOrders,
		metric.WithDescription("Orders in each status now, by status."), metric.WithUnit("{order}"))
	if err != nil {
		return nil, fmt.Errorf("metric %s: %w", MetricOrders, err)
	}
	reg, err := meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		counts, err := h.Handle(ctx)
		if err != nil {
			return err
		}
		for status, n := range counts {
			o.ObserveInt64(gauge, n, metric.WithAttributes(statusKey.String(string(status))))
		}
		return nil
	}, gauge)
	if err != nil {
		return nil, fmt.Errorf("metric %s: %w", MetricOrders, err)
	}
	return reg, nil
}
