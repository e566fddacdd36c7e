package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/queue/outbox"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestCommittedMessageIsForwarded(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)
	dst, col := newDestination(t, "order.events", "payment.commands")
	f, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{Outbox: ob})

	orderMsg := message.NewMessage("m-1", []byte(`{"order_id":"o-1"}`))
	orderMsg.Metadata.Set("correlation_id", "o-1")
	orderMsg.Metadata.Set("type", "OrderPlaced")
	chargeMsg := message.NewMessage("m-2", []byte(`{"amount":10}`))
	require.NoError(t, inTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO orders (id, status) VALUES ('o-1', 'PLACED')`); err != nil {
			return err
		}
		if err := ob.Publisher(tx).Publish("order.events", orderMsg); err != nil {
			return err
		}
		return ob.Store(ctx, tx, "payment.commands", chargeMsg)
	}))

	col.waitCount(t, 2, 5*time.Second)
	byUUID := map[string]*message.Message{}
	for _, m := range col.msgs {
		byUUID[m.UUID] = m
	}
	require.Contains(t, byUUID, "m-1")
	require.Contains(t, byUUID, "m-2")
	assert.Equal(t, orderMsg.Payload, byUUID["m-1"].Payload)
	assert.Equal(t, orderMsg.Metadata, byUUID["m-1"].Metadata)
	assert.Equal(t, chargeMsg.Payload, byUUID["m-2"].Payload)
	waitPending(t, f, 0, 5*time.Second)
}

func TestRolledBackMessageIsNotForwarded(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)
	dst, col := newDestination(t, "order.events")
	startForwarder(t, db, dst, outbox.ForwarderConfig{Outbox: ob})

	errBusiness := errors.New("out of stock")
	err = inTx(ctx, db, func(tx *sql.Tx) error {
		if err := ob.Store(ctx, tx, "order.events", message.NewMessage("rolled-back", nil)); err != nil {
			return err
		}
		return errBusiness
	})
	require.ErrorIs(t, err, errBusiness)
	require.NoError(t, placeOrder(ctx, db, ob, "committed"))

	// The committed message was stored after the rolled-back one would
	// have been: once it arrives, the other would have arrived before it.
	col.waitCount(t, 1, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, map[string]int{"committed": 1}, col.snapshot())
}

// A message the queue would refuse for good (a topic or uuid no backend
// takes) fails the transaction that stores it, naming what is wrong:
// stored, it would be tried once per forwarder pause for ever.
func TestWhatTheQueueWouldRefuseIsRefusedWhenStored(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)
	tests := []struct {
		name, topic, uuid, wantInErr string
	}{
		{"empty topic", "", "m-1", "topic name is empty"},
		{"topic with a space", "order events", "m-1", `character ' '`},
		{"topic too long", strings.Repeat("t", 46), "m-1", "at most 45"},
		{"empty uuid", "order.events", "", "must have 1 to 36 characters"},
		{"uuid too long", "order.events", strings.Repeat("u", 37), "must have 1 to 36 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := inTx(ctx, db, func(tx *sql.Tx) error {
				return ob.Store(ctx, tx, tt.topic, message.NewMessage("first", nil), message.NewMessage(tt.uuid, nil))
			})
			if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("Store to %q of uuid %q: got %v, want an error containing %q", tt.topic, tt.uuid, err, tt.wantInErr)
			}
			err = inTx(ctx, db, func(tx *sql.Tx) error {
				return ob.Publisher(tx).Publish(tt.topic, message.NewMessage(tt.uuid, nil))
			})
			if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("Publish to %q of uuid %q: got %v, want an error containing %q", tt.topic, tt.uuid, err, tt.wantInErr)
			}
		})
	}
	var stored int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM watermill_outbox`).Scan(&stored))
	if stored != 0 {
		t.Errorf("outbox rows after refused stores: got %d, want 0", stored)
	}
}

func TestConcurrentTransactionsAreForwardedOnce(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)
	dst, col := newDestination(t, "order.events", "inventory.commands")
	f, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{Outbox: ob})

	const workers, txsPerWorker = 20, 25
	want := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		for i := range txsPerWorker {
			id := fmt.Sprintf("o-%d-%d", w, i)
			want[id] = 1
			want[id+"-reserve"] = 1
		}
		wg.Go(func() {
			for i := range txsPerWorker {
				id := fmt.Sprintf("o-%d-%d", w, i)
				err := inTx(ctx, db, func(tx *sql.Tx) error {
					if _, err := tx.Exec(`INSERT INTO orders (id, status) VALUES (?, 'PLACED')`, id); err != nil {
						return err
					}
					pub := ob.Publisher(tx)
					if err := pub.Publish("order.events", message.NewMessage(id, nil)); err != nil {
						return err
					}
					return pub.Publish("inventory.commands", message.NewMessage(id+"-reserve", nil))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	col.waitCount(t, len(want), 20*time.Second)
	waitPending(t, f, 0, 5*time.Second)
	time.Sleep(50 * time.Millisecond) // a duplicate would arrive now
	assert.Equal(t, want, col.snapshot())
}

func TestForwarderRestartResumes(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)
	dst, col := newDestination(t, "order.events")

	_, stop := startForwarder(t, db, dst, outbox.ForwarderConfig{Outbox: ob})
	for i := range 10 {
		require.NoError(t, placeOrder(ctx, db, ob, fmt.Sprintf("before-%d", i)))
	}
	col.waitCount(t, 10, 5*time.Second)
	stop()

	// Committed while no forwarder runs, as after a crash.
	for i := range 10 {
		require.NoError(t, placeOrder(ctx, db, ob, fmt.Sprintf("while-down-%d", i)))
	}
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, 10, col.count())

	f2, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{}) // polling only
	col.waitCount(t, 20, 5*time.Second)
	waitPending(t, f2, 0, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	got := col.snapshot()
	assert.Len(t, got, 20)
	for id, n := range got {
		assert.Equal(t, 1, n, "deliveries of %s", id)
	}
	// Forwarded in commit order.
	order := col.publishOrder()
	assert.True(t, slices.Equal(order[10:], []string{
		"while-down-0", "while-down-1", "while-down-2", "while-down-3", "while-down-4",
		"while-down-5", "while-down-6", "while-down-7", "while-down-8", "while-down-9",
	}), "order: %v", order)
}

func TestGracefulRestartsUnderLoadForwardEverythingOnce(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)
	dst, col := newDestination(t, "order.events")

	const n = 300
	want := make([]string, n)
	produced := make(chan error, 1)
	go func() {
		for i := range n {
			want[i] = fmt.Sprintf("o-%03d", i)
			if err := placeOrder(ctx, db, ob, want[i]); err != nil {
				produced <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		produced <- nil
	}()

	// Stop (alternately by Close and by cancelling Run's context) and
	// restart the forwarder while the service keeps committing. A slow
	// destination makes every stop land in the middle of a forward.
	slow := slowPublisher{Publisher: dst, delay: 2 * time.Millisecond}
	for i := range 6 {
		_, stop := runForwarder(t, db, slow, outbox.ForwarderConfig{Outbox: ob, BatchSize: 4}, i%2 == 1)
		time.Sleep(time.Duration(20+7*i) * time.Millisecond)
		stop()
	}
	require.NoError(t, <-produced)
	f, _ := startForwarder(t, db, dst, outbox.ForwarderConfig{Outbox: ob})
	col.waitCount(t, n, 10*time.Second)
	waitPending(t, f, 0, 5*time.Second)
	time.Sleep(50 * time.Millisecond)

	got := col.publishOrder()
	assert.Equal(t, want, got, "published: got %d messages, want %d, each once and in commit order", len(got), n)
}

type slowPublisher struct {
	message.Publisher
	delay time.Duration
}

func (p slowPublisher) Publish(topic string, msgs ...*message.Message) error {
	time.Sleep(p.delay)
	return p.Publisher.Publish(topic, msgs...)
}

// flakyPublisher fails while down is set.
type flakyPublisher struct {
	message.Publisher
	down     atomic.Bool
	failures atomic.Int64
}

func (p *flakyPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.down.Load() {
		p.failures.Add(1)
		return errors.New("destination unavailable")
	}
	return p.Publisher.Publish(topic, msgs...)
}

func TestDestinationFailureDoesNotBlockBusinessWrites(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)
	dst, col := newDestination(t, "order.events")
	flaky := &flakyPublisher{Publisher: dst}
	flaky.down.Store(true)
	// The retry comes an hour after the failure: were the forwarder to
	// wait for it holding the service's write lock, the business
	// transactions below would wait with it.
	_, stop := startForwarder(t, db, flaky, outbox.ForwarderConfig{Outbox: ob, RetryInterval: time.Hour})
	defer stop()

	require.NoError(t, placeOrder(ctx, db, ob, "o-0"))
	require.Eventually(t, func() bool { return flaky.failures.Load() >= 1 }, 10*time.Second, 5*time.Millisecond)
	requirePlaced(t, db, ob, 1, 20, "the forwarder waited to retry a failed forward")
	assert.Equal(t, 0, col.count())

	// Back up, a forwarder started again (as after a restart) forwards
	// every message recorded meanwhile, each once.
	stop()
	flaky.down.Store(false)
	f, _ := startForwarder(t, db, flaky, outbox.ForwarderConfig{Outbox: ob})
	col.waitCount(t, 20, 5*time.Second)
	waitPending(t, f, 0, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	got := col.snapshot()
	assert.Len(t, got, 20)
	for id, n := range got {
		assert.Equal(t, 1, n, "deliveries of %s", id)
	}
}

// requirePlaced places orders o-from … o-to (business transactions that
// each record a message in the outbox) and fails the test unless they all
// commit within 10s — while the forwarder does what its caller names.
func requirePlaced(t *testing.T, db *sql.DB, ob *outbox.Outbox, from, to int, while string) {
	t.Helper()
	placed := make(chan error, 1)
	go func() {
		for i := from; i < to; i++ {
			if err := placeOrder(context.Background(), db, ob, fmt.Sprintf("o-%d", i)); err != nil {
				placed <- err
				return
			}
		}
		placed <- nil
	}()
	select {
	case err := <-placed:
		require.NoError(t, err, "business transactions while %s", while)
	case <-time.After(10 * time.Second):
		t.Fatalf("business transactions still blocked 10s after they began, while %s: the forwarder holds the write lock", while)
	}
}

func TestCleanupDeletesForwardedMessagesAndNeverReusesOffsets(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)
	dst, col := newDestination(t, "order.events")
	startForwarder(t, db, dst, outbox.ForwarderConfig{Outbox: ob, CleanupInterval: 10 * time.Millisecond, CleanupBatchSize: 7})

	rows := func() (n int) {
		require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM watermill_outbox`).Scan(&n))
		return n
	}
	for i := range 30 {
		require.NoError(t, placeOrder(ctx, db, ob, fmt.Sprintf("a-%d", i)))
	}
	col.waitCount(t, 30, 5*time.Second)
	require.Eventually(t, func() bool { return rows() == 0 }, 5*time.Second, 10*time.Millisecond)

	// The table is empty; new offsets continue after the acked one.
	require.NoError(t, placeOrder(ctx, db, ob, "b-0"))
	col.waitCount(t, 31, 5*time.Second)
	var maxOffset int64
	require.NoError(t, db.QueryRow(`SELECT seq FROM sqlite_sequence WHERE name = 'watermill_outbox'`).Scan(&maxOffset))
	assert.Equal(t, int64(31), maxOffset)
	assert.Equal(t, 1, col.snapshot()["b-0"])
}

// TestForwarderIsWokenByCommits checks that a store wakes the forwarder:
// with polling pushed out to an hour, only a wake-up can forward the
// messages within the test's seconds. The control case, the same forwarder
// without Outbox set, shows that nothing else does (how fast forwarding
// is, is BenchmarkForwardingLatency's business).
func TestForwarderIsWokenByCommits(t *testing.T) {
	tests := []struct {
		name       string
		wake       bool
		wantCommit bool // every message forwarded within seconds
	}{
		{name: "woken by the outbox", wake: true, wantCommit: true},
		{name: "not woken (control)", wake: false, wantCommit: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db, ob, col := forwarding(t, tt.wake, outbox.ForwarderConfig{MinPollInterval: time.Hour, PollInterval: time.Hour})
			// Let the forwarder's first poll find the outbox empty and
			// start its hour-long wait (the control case depends on it:
			// a first poll after the commits would forward them).
			time.Sleep(time.Second)

			const n = 5
			for i := range n {
				require.NoError(t, placeOrder(ctx, db, ob, fmt.Sprintf("o-%d", i)))
				if tt.wantCommit {
					col.waitCount(t, i+1, 5*time.Second)
				}
			}
			if !tt.wantCommit {
				time.Sleep(300 * time.Millisecond)
				if got := col.count(); got != 0 {
					t.Errorf("forwarded without wake-ups: got %d messages, want 0 (then the woken case proves nothing)", got)
				}
			}
		})
	}
}

// forwarding starts a forwarder from a fresh service database's outbox to
// a destination collecting order.events; woken sets cfg.Outbox, so that
// stores wake the forwarder.
func forwarding(tb testing.TB, woken bool, cfg outbox.ForwarderConfig) (*sql.DB, *outbox.Outbox, *collector) {
	tb.Helper()
	db := tempDB(tb)
	ob, err := outbox.New(context.Background(), db, outbox.Config{})
	require.NoError(tb, err)
	dst, col := newDestination(tb, "order.events")
	if woken {
		cfg.Outbox = ob
	}
	startForwarder(tb, db, dst, cfg)
	return db, ob, col
}

// BenchmarkForwardingLatency reports the time from a business commit to
// the message's arrival at the destination (p50 and max over b.N commits,
// one at a time), woken or polling, right after traffic or after idling.
//
//	go test -run '^$' -bench ForwardingLatency -benchtime 50x ./outbox/
func BenchmarkForwardingLatency(b *testing.B) {
	cases := []struct {
		name string
		wake bool          // ForwarderConfig.Outbox set
		gap  time.Duration // idle time before each commit
	}{
		{name: "woken/after-traffic", wake: true},
		{name: "woken/after-idling", wake: true, gap: 110 * time.Millisecond},
		{name: "polling/after-traffic"},
		{name: "polling/after-idling", gap: 50 * time.Millisecond},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			db, ob, col := forwarding(b, bc.wake, outbox.ForwarderConfig{})

			committed := make(map[string]time.Time, b.N)
			b.ResetTimer()
			for i := range b.N {
				time.Sleep(bc.gap)
				id := fmt.Sprintf("o-%d", i)
				require.NoError(b, placeOrder(ctx, db, ob, id))
				committed[id] = time.Now()
				col.waitCount(b, i+1, 5*time.Second)
			}
			b.StopTimer()
			var lat []time.Duration
			col.mu.Lock()
			for id, at := range col.at {
				lat = append(lat, at.Sub(committed[id]))
			}
			col.mu.Unlock()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
		})
	}
}

func TestConfigValidation(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	dst, _ := newDestination(t)
	tests := []struct {
		name    string
		cfg     outbox.ForwarderConfig
		wantErr bool
	}{
		{name: "defaults", cfg: outbox.ForwarderConfig{}},
		{name: "topic with dots", cfg: outbox.ForwarderConfig{ForwarderTopic: "order.outbox"}},
		{name: "topic with a quote", cfg: outbox.ForwarderConfig{ForwarderTopic: `x"; DROP TABLE orders; --`}, wantErr: true},
		{name: "negative batch", cfg: outbox.ForwarderConfig{BatchSize: -1}, wantErr: true},
		{name: "negative poll", cfg: outbox.ForwarderConfig{PollInterval: -time.Millisecond}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := outbox.NewForwarder(db, dst, tt.cfg)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.NoError(t, f.Close())
		})
	}

	_, err := outbox.New(ctx, nil, outbox.Config{})
	assert.Error(t, err)
	_, err = outbox.New(ctx, db, outbox.Config{ForwarderTopic: "bad topic"})
	assert.Error(t, err)
	_, err = outbox.NewForwarder(db, nil, outbox.ForwarderConfig{})
	assert.Error(t, err)

	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)
	assert.Error(t, ob.Publisher(nil).Publish("t", message.NewMessage("x", nil)))
	require.NoError(t, inTx(ctx, db, func(tx *sql.Tx) error {
		return ob.Publisher(tx).Publish("order.events") // no messages: no-op
	}))
}

// With a MeterProvider the forwarder reports its unforwarded messages as
// MetricPending whenever metrics are collected, and stops when closed.
func TestPendingGauge(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)
	reader := sdkmetric.NewManualReader()
	dst, _ := newDestination(t, "order.events")
	f, err := outbox.NewForwarder(db, dst, outbox.ForwarderConfig{Outbox: ob, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	require.NoError(t, err)
	for _, id := range []string{"o-1", "o-2", "o-3"} {
		require.NoError(t, placeOrder(ctx, db, ob, id)) // not forwarded: the forwarder does not run
	}
	pending := func() (int64, bool) {
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(ctx, &rm))
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == outbox.MetricPending && len(g.DataPoints) == 1 {
					return g.DataPoints[0].Value, true
				}
			}
		}
		return 0, false
	}
	if n, ok := pending(); !ok || n != 3 {
		t.Errorf("%s with 3 messages stored and none forwarded: got %d (reported %v), want 3", outbox.MetricPending, n, ok)
	}
	require.NoError(t, f.Close())
	if n, ok := pending(); ok {
		t.Errorf("%s after Close: got %d, want it no longer reported", outbox.MetricPending, n)
	}
}

// A count that must wait for the database's one connection (a long
// transaction holds it) is left out of the collection after a second,
// not waited for: Prometheus's exporter collects without a deadline. With
// a ReadDB the count does not wait at all.
func TestPendingGaugeDoesNotWaitForTheWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "svc.db")
	db := openDB(t, path) // one connection
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)
	require.NoError(t, placeOrder(ctx, db, ob, "o-1"))
	dst, _ := newDestination(t, "order.events")
	reader := sdkmetric.NewManualReader()
	readDB := openDB(t, path)
	f, err := outbox.NewForwarder(db, dst, outbox.ForwarderConfig{Outbox: ob, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	withReader, err := outbox.NewForwarder(db, dst, outbox.ForwarderConfig{Outbox: ob, ReadDB: readDB})
	require.NoError(t, err)
	t.Cleanup(func() { _ = withReader.Close() })

	tx, err := db.BeginTx(ctx, nil) // holds the one connection
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()

	began := time.Now()
	var rm metricdata.ResourceMetrics
	err = reader.Collect(ctx, &rm)
	if took := time.Since(began); err == nil || took > 5*time.Second {
		t.Errorf("collect while the writer is held: got error %v after %s, want the count given up after about 1s", err, took.Round(time.Millisecond))
	}
	n, err := withReader.Pending(ctx)
	if err != nil || n != 1 {
		t.Errorf("Pending through ReadDB while the writer is held: got %d, %v; want 1", n, err)
	}
}
