package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/logtest"
)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestPercentile(t *testing.T) {
	oneToTen := []time.Duration{ms(1), ms(2), ms(3), ms(4), ms(5), ms(6), ms(7), ms(8), ms(9), ms(10)}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(float64(i + 1))
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single p50", []time.Duration{ms(7)}, 50, ms(7)},
		{"single p99", []time.Duration{ms(7)}, 99, ms(7)},
		{"ten p50", oneToTen, 50, ms(5)},
		{"ten p90", oneToTen, 90, ms(9)},
		{"ten p99", oneToTen, 99, ms(10)},
		{"ten p100", oneToTen, 100, ms(10)},
		{"ten p1", oneToTen, 1, ms(1)},
		{"hundred p50", hundred, 50, ms(50)},
		{"hundred p99", hundred, 99, ms(99)},
		{"hundred p99.9", hundred, 99.9, ms(100)},
		{"two p50", []time.Duration{ms(1), ms(2)}, 50, ms(1)},
		{"two p51", []time.Duration{ms(1), ms(2)}, 51, ms(2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(p%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	got := Summarize([]time.Duration{ms(30), ms(10), ms(20), ms(40)})
	want := Latency{Count: 4, Min: ms(10), Mean: ms(25), P50: ms(20), P90: ms(40), P99: ms(40), Max: ms(40)}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if got := Summarize(nil); got != (Latency{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", got)
	}
}

func TestLatencyJSON(t *testing.T) {
	l := Latency{Count: 3, Min: ms(1.5), Mean: ms(2), P50: ms(2), P90: ms(2.5), P99: ms(2.5), Max: ms(2.5)}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"count":3,"min_ms":1.5,"mean_ms":2,"p50_ms":2,"p90_ms":2.5,"p99_ms":2.5,"max_ms":2.5}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
	var back Latency
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != l {
		t.Errorf("round trip = %+v, want %+v", back, l)
	}
}

func TestPacer(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := Pacer{Start: start, Rate: 200}
	for _, tt := range []struct {
		i    int
		want time.Duration
	}{{0, 0}, {1, 5 * time.Millisecond}, {200, time.Second}, {1000, 5 * time.Second}} {
		if got := p.Due(tt.i).Sub(start); got != tt.want {
			t.Errorf("Due(%d) = start+%v, want start+%v", tt.i, got, tt.want)
		}
	}
	for _, tt := range []struct {
		at   time.Duration
		want int
	}{{-time.Second, 0}, {0, 1}, {4 * time.Millisecond, 1}, {5 * time.Millisecond, 2}, {time.Second, 201}} {
		if got := p.SentBy(start.Add(tt.at)); got != tt.want {
			t.Errorf("SentBy(start%+v) = %d, want %d", tt.at, got, tt.want)
		}
	}
	// Fractional rates: one send every 2s.
	if got := (Pacer{Start: start, Rate: 0.5}).Due(3).Sub(start); got != 6*time.Second {
		t.Errorf("rate 0.5: Due(3) = start+%v, want start+6s", got)
	}
}

func TestPacerWait(t *testing.T) {
	now := time.Now()
	p := Pacer{Start: now, Rate: 1}
	// Overdue: returns at once.
	if err := p.Wait(context.Background(), 0, func() time.Time { return now.Add(time.Hour) }); err != nil {
		t.Fatalf("Wait(overdue) = %v, want nil", err)
	}
	// Due in an hour: the context ends first.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Wait(ctx, 3600, time.Now); err == nil {
		t.Fatal("Wait(due in an hour) = nil, want the context's error")
	}
	if d := time.Since(start); d > 10*time.Second { // not the hour: a busy machine may be slow
		t.Errorf("Wait returned after %v, want about 20ms", d)
	}
}

// TestRunRate checks what the pacer did in rate mode, not how fast this
// machine is (BenchmarkRunPaced measures that): every send at or after its
// due time and none of those due after the duration. How many of those due
// within it went out depends on the machine (a starved process sends
// fewer); the pacer's arithmetic is TestPacer's.
func TestRunRate(t *testing.T) {
	const rate, duration = 200.0, 500 * time.Millisecond
	api := newFakeAPI(30*time.Millisecond, nil)
	srv := httptest.NewServer(api)
	defer srv.Close()
	started := time.Now() // at or before Run's own start, which paces from it
	rep, err := Run(context.Background(), Config{URL: srv.URL, Rate: rate, Duration: duration, PollInterval: 20 * time.Millisecond, RunID: "rate"})
	if err != nil {
		t.Fatal(err)
	}
	// 0.5 s at 200/s: sends 0..100 are due within the window.
	due := int(rate*duration.Seconds()) + 1
	if rep.Placed > due || rep.Placed < 1 {
		t.Errorf("placed %d, want at least one and at most the %d due within %v", rep.Placed, due, duration)
	}
	checkPaced(t, api, "rate", Pacer{Start: started, Rate: rate}, rep.Placed)
	if rep.Completed != rep.Placed || rep.TimedOutWaiting != 0 || rep.PlaceErrors != 0 {
		t.Errorf("completed %d, timed out %d, errors %d; want all %d completed", rep.Completed, rep.TimedOutWaiting, rep.PlaceErrors, rep.Placed)
	}
	if rep.Latency.P50 != 30*time.Millisecond || rep.Latency.Max != 30*time.Millisecond {
		t.Errorf("latency p50 %v max %v, want 30ms (the fake's lifetime, on the server clock)", rep.Latency.P50, rep.Latency.Max)
	}
	if rep.Mode != "rate" || rep.PlaceLatency.Count != rep.Placed {
		t.Errorf("mode %q, place latency samples %d; want rate, %d", rep.Mode, rep.PlaceLatency.Count, rep.Placed)
	}
}

// TestRunHighRate: at a high target rate with a count, loadgen places
// exactly that many orders, none before its time, and finds their ends
// with far fewer status requests than orders. Whether it keeps up with
// the rate is for BenchmarkRunPaced to measure: under -race it does not.
func TestRunHighRate(t *testing.T) {
	if testing.Short() {
		t.Skip("a thousand orders: not in -short")
	}
	const rate, count = 1500.0, 1000
	api := newFakeAPI(20*time.Millisecond, nil)
	srv := httptest.NewServer(api)
	defer srv.Close()
	started := time.Now()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Rate: rate, Count: count, RunID: "high"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Placed != count || rep.PlaceErrors != 0 {
		t.Fatalf("placed %d, errors %d (%s); want %d, 0", rep.Placed, rep.PlaceErrors, rep.LastError, count)
	}
	checkPaced(t, api, "high", Pacer{Start: started, Rate: rate}, count)
	if rep.Completed != rep.Placed {
		t.Errorf("completed %d of %d", rep.Completed, rep.Placed)
	}
	// One request per terminal status per 200ms round, plus a page per
	// 500 orders: far fewer than one per order.
	rounds := int(rep.ElapsedSeconds/0.2) + 2
	if limit := 3*rounds + rep.Placed/100; rep.StatusReads > limit {
		t.Errorf("%d status reads for %d orders in %.1fs, want at most %d", rep.StatusReads, rep.Placed, rep.ElapsedSeconds, limit)
	}
	t.Logf("%d orders at %.0f/s, %d status reads", rep.Placed, rep.PlacedPerSecond, rep.StatusReads)
}

// checkPaced checks, on the fake's clock, the orders a rate-mode run with
// RunID runID placed: exactly sends 0..n-1 (n > 0), each once, and none
// before pacer says it was due. pacer.Start must be at or before the run's
// start (the run's own pacer is then never ahead of it); the fake's clock
// is truncated to the millisecond, hence the 1ms of slack.
func checkPaced(t *testing.T, api *fakeAPI, runID string, pacer Pacer, n int) {
	t.Helper()
	if n <= 0 {
		t.Fatalf("%d orders placed, want some to check the pacing of", n)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	seen := make([]bool, n)
	early := 0
	for key, id := range api.keys {
		i, err := strconv.Atoi(strings.TrimPrefix(key, runID+"-"))
		if err != nil || !strings.HasPrefix(key, runID+"-") || i < 0 || i >= n || seen[i] {
			t.Errorf("order with idempotency key %q: want one key of %s-0..%s-%d each", key, runID, runID, n-1)
			continue
		}
		seen[i] = true
		if at, due := api.orders[id].placedAt, pacer.Due(i); at.Before(due.Add(-time.Millisecond)) {
			if early++; early <= 5 {
				t.Errorf("send %d reached the server at start+%v, want at or after start+%v (its due time)", i, at.Sub(pacer.Start), due.Sub(pacer.Start))
			}
		}
	}
	if got := len(api.keys); got != n {
		t.Errorf("the server got %d orders, want %d", got, n)
	}
}

// BenchmarkRunPaced measures whether loadgen keeps up with 1,500 orders/s
// against an in-memory API: its placed/s metric is 1,500 when it does (the
// pacer never sends faster), less when it falls behind. Run it without
// -race, which slows every goroutine several times:
//
//	go test -run '^$' -bench RunPaced ./loadgen
func BenchmarkRunPaced(b *testing.B) {
	const rate, count = 1500.0, 1500
	placed, seconds := 0, 0.0
	for b.Loop() {
		srv := httptest.NewServer(newFakeAPI(20*time.Millisecond, nil))
		rep, err := Run(context.Background(), Config{URL: srv.URL, Rate: rate, Count: count})
		srv.Close()
		if err != nil {
			b.Fatal(err)
		}
		if rep.Placed != count || rep.PlaceErrors != 0 {
			b.Fatalf("placed %d, errors %d (%s); want %d, 0", rep.Placed, rep.PlaceErrors, rep.LastError, count)
		}
		placed += rep.Placed
		seconds += rep.PlaceSeconds
	}
	b.ReportMetric(float64(placed)/seconds, "placed/s")
}

func TestRunConcurrencyCountOutcomes(t *testing.T) {
	outcome := func(i int) string {
		switch i % 10 {
		case 0:
			return StatusRejected
		case 1:
			return StatusCancelled
		}
		return StatusCompleted
	}
	api := newFakeAPI(5*time.Millisecond, outcome)
	srv := httptest.NewServer(api)
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Concurrency: 8, Count: 1000, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Placed != 1000 || rep.Completed != 800 || rep.Cancelled != 100 || rep.Rejected != 100 || rep.Terminal() != 1000 {
		t.Errorf("placed %d completed %d cancelled %d rejected %d, want 1000 800 100 100", rep.Placed, rep.Completed, rep.Cancelled, rep.Rejected)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.gets != 0 {
		t.Errorf("%d single-order GETs, want 0 (pages of the list are enough)", api.gets)
	}
	// About one request per terminal status per round, however many
	// orders a round finds.
	rounds := int(rep.ElapsedSeconds/0.01) + 2
	if limit := 3*rounds + 10; api.lists > limit {
		t.Errorf("%d list requests in %.2fs, want at most %d", api.lists, rep.ElapsedSeconds, limit)
	}
	// Random orders: 1..3 distinct SKUs of the catalogue, 1..3 units.
	for _, b := range api.bodies {
		seen := map[string]bool{}
		if len(b.Items) < 1 || len(b.Items) > 3 {
			t.Fatalf("order with %d lines, want 1..3", len(b.Items))
		}
		for _, l := range b.Items {
			if seen[l.SKU] || !strings.HasPrefix(l.SKU, "SKU-") || l.Quantity < 1 || l.Quantity > 3 {
				t.Fatalf("bad line %+v in %+v", l, b)
			}
			seen[l.SKU] = true
		}
	}
}

func TestRunRetriesKeepIdempotencyKey(t *testing.T) {
	api := newFakeAPI(time.Millisecond, nil)
	api.failEvery = 3
	srv := httptest.NewServer(api)
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Concurrency: 4, Count: 60, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Placed != 60 || rep.PlaceErrors != 0 || rep.PlaceRetries == 0 {
		t.Errorf("placed %d errors %d retries %d, want 60, 0, some", rep.Placed, rep.PlaceErrors, rep.PlaceRetries)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.n != 60 {
		t.Errorf("server holds %d orders, want 60", api.n)
	}
}

func TestRunMaxPending(t *testing.T) {
	api := newFakeAPI(50*time.Millisecond, nil)
	srv := httptest.NewServer(api)
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Concurrency: 4, MaxPending: 10, Duration: 500 * time.Millisecond, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	// The tracker sees completions late, never early, and the requests in
	// flight count against the limit: at most MaxPending are open on the
	// server.
	if api.maxOpen > 10 {
		t.Errorf("%d orders open at once, want at most 10", api.maxOpen)
	}
	// 50ms sagas, 10 at a time: about 200/s at most.
	if rep.Placed == 0 || rep.PlacedPerSecond > 300 {
		t.Errorf("placed %d (%.0f/s), want some and at most about 200/s", rep.Placed, rep.PlacedPerSecond)
	}
	if rep.Completed != rep.Placed || rep.MaxPending != 10 {
		t.Errorf("completed %d of %d, max pending %d", rep.Completed, rep.Placed, rep.MaxPending)
	}
}

func TestRunWaitTimeout(t *testing.T) {
	api := newFakeAPI(time.Hour, nil)
	srv := httptest.NewServer(api)
	defer srv.Close()
	start := time.Now()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Count: 5, WaitTimeout: 300 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TimedOutWaiting != 5 || rep.Terminal() != 0 {
		t.Errorf("timed out %d, terminal %d; want 5, 0", rep.TimedOutWaiting, rep.Terminal())
	}
	if d := time.Since(start); d > 20*time.Second { // not the hour the orders take: a busy machine may be slow
		t.Errorf("took %v, want about the 300ms wait", d)
	}
}

func TestRunInterrupted(t *testing.T) {
	api := newFakeAPI(10*time.Millisecond, nil)
	// Interrupt once an order is placed, whenever that is on a busy
	// machine: loadgen asks the status only of orders it placed. The
	// minute bounds only a run that never gets that far.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var interruptedAt atomic.Pointer[time.Time]
	api.onStatusRead = func() {
		if now := time.Now(); interruptedAt.CompareAndSwap(nil, &now) {
			cancel()
		}
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	rep, err := Run(ctx, Config{URL: srv.URL, Rate: 100, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	at := interruptedAt.Load()
	if at == nil {
		t.Fatal("loadgen read no order's status within a minute: no order placed to interrupt after")
	}
	// Well under the minute it would place for otherwise.
	if d := time.Since(*at); d > 20*time.Second {
		t.Errorf("took %v after the interrupt, want a prompt stop", d)
	}
	if !rep.Interrupted || rep.Placed == 0 {
		t.Errorf("interrupted %v placed %d, want true and some", rep.Interrupted, rep.Placed)
	}
	if rep.Terminal()+rep.TimedOutWaiting != rep.Placed {
		t.Errorf("terminal %d + pending %d != placed %d", rep.Terminal(), rep.TimedOutWaiting, rep.Placed)
	}
}

func TestRunUnreachable(t *testing.T) {
	srv := httptest.NewServer(newFakeAPI(0, nil))
	url := srv.URL
	srv.Close()
	// No wait for readiness: what is reported when placing fails.
	rep, err := Run(context.Background(), Config{URL: url, Count: 3, WaitTimeout: 100 * time.Millisecond, ReadyTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Placed != 0 || rep.PlaceErrors != 3 || rep.ErrorKinds["transport"] != 3 {
		t.Errorf("placed %d errors %d kinds %v, want 0, 3, transport: 3", rep.Placed, rep.PlaceErrors, rep.ErrorKinds)
	}
}

// Run first waits for GET /readyz: an order API that never answers ends
// the run at once with the reason and no report; one that is still
// starting gets the time it needs; an interrupt during the wait is no
// error.
func TestRunWaitsForTheOrderAPIToBeReady(t *testing.T) {
	t.Run("never ready", func(t *testing.T) {
		srv := httptest.NewServer(newFakeAPI(0, nil))
		url := srv.URL
		srv.Close()
		rep, err := Run(context.Background(), Config{URL: url, Count: 3, ReadyTimeout: 200 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "not ready") || !strings.Contains(err.Error(), "is the system running") {
			t.Errorf("error: got %v, want one saying the order API is not ready and asking whether the system runs", err)
		}
		if !rep.StartedAt.IsZero() || rep.Placed != 0 || rep.PlaceErrors != 0 {
			t.Errorf("report: got started %v, placed %d, place errors %d; want none", rep.StartedAt, rep.Placed, rep.PlaceErrors)
		}
	})
	t.Run("starting", func(t *testing.T) {
		api := newFakeAPI(0, nil)
		api.notReady = 3
		srv := httptest.NewServer(api)
		defer srv.Close()
		rep, err := Run(context.Background(), Config{URL: srv.URL, Count: 3, ReadyTimeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Placed != 3 || rep.Completed != 3 {
			t.Errorf("placed %d completed %d, want 3 and 3", rep.Placed, rep.Completed)
		}
		api.mu.Lock()
		checks, posts := api.readyChecks, api.posts
		api.mu.Unlock()
		if checks != 4 {
			t.Errorf("readiness checks: got %d, want 4 (three refused, then ready)", checks)
		}
		if posts != 3 {
			t.Errorf("POST /orders: got %d, want 3 (none before the API was ready)", posts)
		}
	})
	t.Run("interrupted while waiting", func(t *testing.T) {
		api := newFakeAPI(0, nil)
		api.notReady = 1 << 30
		srv := httptest.NewServer(api)
		defer srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		rep, err := Run(ctx, Config{URL: srv.URL, Count: 3, ReadyTimeout: 10 * time.Second})
		if err != nil || !rep.StartedAt.IsZero() {
			t.Errorf("got report started %v and error %v, want neither", rep.StartedAt, err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{Count: 1}, "no order API URL"},
		{"no stop", Config{URL: "http://x"}, "duration or a count"},
		{"negative", Config{URL: "http://x", Count: 1, Rate: -1}, "must not be negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// A few stuck orders must not make every round re-read all the terminal
// orders placed after them: past WasteLimit they are looked up one by one.
func TestTrackerStragglers(t *testing.T) {
	api := newFakeAPI(0, nil)
	api.life = func(i int) time.Duration {
		if i == 0 {
			return time.Hour // stuck
		}
		return 0
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	c, err := NewClient(srv.URL, 4)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tr := newTracker(c, trackerConfig{PageSize: 50, WasteLimit: 100, StragglerAge: time.Nanosecond})
	for i := range 301 {
		o, err := c.Place(ctx, fmt.Sprintf("k%d", i), OrderRequest{CustomerID: "c", Items: []Line{{SKU: "SKU-1", Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		tr.add(o)
	}
	counts := func() (lists, gets int) {
		api.mu.Lock()
		defer api.mu.Unlock()
		return api.lists, api.gets
	}
	now := time.Now().Add(time.Second)
	// The 300 quick orders were terminal when placed; only the stuck one
	// is pending. Round 1 scans back to it: all 300 known orders read.
	if n, err := tr.round(ctx, now); err != nil || n != 1 {
		t.Fatalf("round 1: pending %d, err %v; want 1, nil", n, err)
	}
	l1, g1 := counts()
	if l1 < 6 || g1 != 0 {
		t.Fatalf("round 1 read %d pages and %d orders, want the whole range (>= 6 pages) and none alone", l1, g1)
	}
	// Round 2 looks the stuck order up alone: one GET, no pages.
	if n, err := tr.round(ctx, now); err != nil || n != 1 {
		t.Fatalf("round 2: pending %d, err %v; want 1, nil", n, err)
	}
	l2, g2 := counts()
	if l2 != l1 || g2 != 1 {
		t.Errorf("round 2: %d pages, %d gets; want 0 pages, 1 get", l2-l1, g2)
	}
}

func TestReportTextAndJSON(t *testing.T) {
	rep := Report{
		URL: "http://127.0.0.1:8080", Mode: "rate", Rate: 200, Concurrency: 512,
		PlaceSeconds: 10, PlacedPerSecond: 200, Placed: 2000, Completed: 1990, Cancelled: 5, Rejected: 3,
		TimedOutWaiting: 2, OrdersPerSecond: 198.5, PlaceErrors: 1, ErrorKinds: map[string]int{"HTTP 503": 1}, LastError: "status 503: busy",
		PlaceRefused: 7,
		Latency:      Latency{Count: 1998, P50: ms(12), P90: ms(20), P99: ms(150), Max: ms(1200)},
		PlaceLatency: Latency{Count: 2000, P50: ms(1.5), P90: ms(3), P99: ms(9), Max: ms(40)},
	}
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{
		"target 200 orders/s", "placed             2000 in 10.0s (200.0/s)", "completed          1990",
		"cancelled          5", "rejected           3", "timed out waiting  2", "orders/s           198.5",
		"p50 12.0 ms  p90 20.0 ms  p99 150.0 ms  max 1.20 s  (n=1998)", "HTTP 503: 1", "refused            7 (503/429 with Retry-After",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := rep.WriteJSONFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"placed", "place_refused", "completed", "cancelled", "rejected", "timed_out_waiting", "orders_per_second", "latency", "place_latency"} {
		if _, ok := m[key]; !ok {
			t.Errorf("JSON lacks %q: %s", key, b)
		}
	}
	if p99 := m["latency"].(map[string]any)["p99_ms"]; p99 != 150.0 {
		t.Errorf("latency.p99_ms = %v, want 150", p99)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Latency != rep.Latency || back.Completed != rep.Completed || back.PlaceRefused != rep.PlaceRefused {
		t.Errorf("JSON round trip lost data: %+v", back)
	}
}

func TestProgressLines(t *testing.T) {
	api := newFakeAPI(time.Millisecond, nil)
	srv := httptest.NewServer(api)
	defer srv.Close()
	for _, tty := range []bool{false, true} {
		var buf logtest.Buffer
		_, err := Run(context.Background(), Config{
			URL: srv.URL, Rate: 100, Duration: 600 * time.Millisecond,
			Progress: &buf, ProgressTTY: tty, ProgressEvery: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if !strings.Contains(out, "placed ") || !strings.Contains(out, "completed ") {
			t.Errorf("tty=%v: progress lacks counters: %q", tty, out)
		}
		if got := strings.Contains(out, "\r\033[2K"); got != tty {
			t.Errorf("tty=%v: rewrites the line in place: %v", tty, got)
		}
		if tty && !strings.Contains(out, "[####") {
			t.Errorf("tty: no progress bar in %q", out)
		}
	}
}

func TestPollWait(t *testing.T) {
	tests := []struct {
		interval, oldestAge, want time.Duration
	}{
		{200 * time.Millisecond, 0, 200 * time.Millisecond},
		{200 * time.Millisecond, time.Second, 200 * time.Millisecond},
		{200 * time.Millisecond, 5 * time.Second, 500 * time.Millisecond},
		{200 * time.Millisecond, time.Minute, maxPollInterval},
		{5 * time.Second, time.Minute, 5 * time.Second}, // never below the interval asked for
	}
	for _, tt := range tests {
		if got := pollWait(tt.interval, tt.oldestAge); got != tt.want {
			t.Errorf("pollWait(%v, %v) = %v, want %v", tt.interval, tt.oldestAge, got, tt.want)
		}
	}
}

// TestSlowOrdersDoNotMultiplyTheReads: while a slow order holds the
// tracker's cut-off back, every round reads again all orders that ended
// since it was placed; rounds then come at a tenth of its age, so each
// order is read about ten times, not once per PollInterval (here 10 ms:
// about 150 times for the fast orders behind a 1.5 s one).
func TestSlowOrdersDoNotMultiplyTheReads(t *testing.T) {
	if testing.Short() {
		t.Skip("three seconds of orders: not in -short")
	}
	api := newFakeAPI(0, nil)
	api.life = func(i int) time.Duration {
		if i%10 == 0 {
			return 1500 * time.Millisecond
		}
		return 50 * time.Millisecond
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Rate: 200, Count: 300, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Completed != 300 {
		t.Fatalf("completed %d of 300", rep.Completed)
	}
	if limit := 20 * rep.Completed; rep.OrdersRead > limit {
		t.Errorf("%d orders read to find %d terminal ones, want at most %d", rep.OrdersRead, rep.Completed, limit)
	}
	t.Logf("%d orders read in %d requests for %d orders", rep.OrdersRead, rep.StatusReads, rep.Completed)
}

// Order i is the same whichever worker draws it, in whatever order: the
// seed and the run id replay a run's orders under the same keys.
func TestOrdersDependOnlyOnSeedAndIndex(t *testing.T) {
	cfg := Config{URL: "http://127.0.0.1:1", Seed: 7, RunID: "rr", Concurrency: 8, Count: 20}
	cfg.setDefaults()
	a, b := &runner{cfg: cfg}, &runner{cfg: cfg}
	forward := make([]OrderRequest, 20)
	for i := range forward {
		forward[i] = a.newOrder(i)
	}
	for i := 19; i >= 0; i-- {
		if got := b.newOrder(i); !reflect.DeepEqual(got, forward[i]) {
			t.Errorf("order %d drawn last: got %+v, want %+v as drawn first", i, got, forward[i])
		}
	}
}

// With --max-pending and orders that never end, a count already placed
// is not held up by the wait for room, and --wait then bounds the wait.
func TestRunMaxPendingWithOrdersThatNeverEnd(t *testing.T) {
	srv := httptest.NewServer(newFakeAPI(time.Hour, nil))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{URL: srv.URL, Concurrency: 1, Count: 2, MaxPending: 2, WaitTimeout: 300 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	if ctx.Err() != nil {
		t.Fatal("loadgen did not return")
	}
	if err != nil || rep.Placed != 2 || rep.TimedOutWaiting != 2 {
		t.Errorf("got placed %d, timed out waiting %d, err %v; want 2, 2, nil", rep.Placed, rep.TimedOutWaiting, err)
	}
}

// A system in which no order ends stops the placing after --wait, with an
// error, instead of holding loadgen at --max-pending for ever.
func TestRunMaxPendingStopsWhenNothingEnds(t *testing.T) {
	srv := httptest.NewServer(newFakeAPI(time.Hour, nil))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, mode := range []Config{{Concurrency: 4}, {Rate: 100}} {
		cfg := mode
		cfg.URL, cfg.Count, cfg.MaxPending, cfg.WaitTimeout, cfg.PollInterval = srv.URL, 50, 3, 300*time.Millisecond, 20*time.Millisecond
		rep, err := Run(ctx, cfg)
		if ctx.Err() != nil {
			t.Fatal("loadgen did not return")
		}
		if err == nil || !strings.Contains(err.Error(), "no order ended") || rep.Placed != 3 {
			t.Errorf("rate %v: got placed %d, err %v; want 3 placed (the limit, in-flight requests included) and an error saying no order ended", cfg.Rate, rep.Placed, err)
		}
	}
}

// --rate R for a duration D sends R×D orders: the one due exactly at the
// end is not sent. And a rate too low for time.Duration does not wrap.
func TestRateSendsWhatIsDueBeforeTheEnd(t *testing.T) {
	const rate, duration = 20.0, 500 * time.Millisecond
	// The pacing, on the test's clock: at 20/s for 500 ms sends 0..9 are
	// due before the end, and send 10 exactly at it, which place's loop
	// stops at (Due(i) not before the end).
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(duration)
	p := Pacer{Start: start, Rate: rate}
	n := 0
	for p.Due(n).Before(end) {
		if err := p.Wait(context.Background(), n, func() time.Time { return p.Due(n) }); err != nil {
			t.Fatalf("Wait(%d) at its due time: %v, want nil", n, err)
		}
		n++
	}
	if n != 10 || !p.Due(10).Equal(end) {
		t.Errorf("%d sends due before the end, send 10 due at start+%v; want 10, and send 10 at the end (start+%v)", n, p.Due(10).Sub(start), duration)
	}

	// A run sends by that: sends 0..n-1 with none missing, each at or
	// after its due time, and never send 10, however late its loop runs.
	// How many of the ten go out depends on the machine: a dispatcher
	// starved past the end sends fewer (see TestRunRate), so only "some"
	// is asked of the wall clock.
	api := newFakeAPI(0, nil)
	srv := httptest.NewServer(api)
	defer srv.Close()
	started := time.Now() // at or before Run's own start, which paces from it
	rep, err := Run(context.Background(), Config{URL: srv.URL, Rate: rate, Duration: duration, PollInterval: 10 * time.Millisecond, RunID: "due"})
	if err != nil || rep.Placed < 1 || rep.Placed > 10 {
		t.Fatalf("got placed %d, err %v; want 1..10 (10 on time), none of them send 10", rep.Placed, err)
	}
	checkPaced(t, api, "due", Pacer{Start: started, Rate: rate}, rep.Placed)
	if rep.Placed < 10 {
		t.Logf("placed %d of the 10 due: the dispatcher ran past the end on this machine", rep.Placed)
	}

	now := time.Now()
	if due := (Pacer{Start: now, Rate: 1e-10}).Due(5); !due.After(now) {
		t.Errorf("rate 1e-10: Due(5) = start%+v, want after the start", due.Sub(now))
	}
}

// The progress line rewritten in place is cut to the terminal's width:
// one that wraps leaves a stale row behind at each rewrite.
func TestFitLine(t *testing.T) {
	tests := []struct {
		line  string
		width int
		want  string
	}{
		{"[##--] 50% placing 1.0s", 0, "[##--] 50% placing 1.0s"},
		{"[##--] 50% placing 1.0s", 80, "[##--] 50% placing 1.0s"},
		{"[##--] 50% placing 1.0s", 11, "[##--] 50%"},
		{"abc", 4, "abc"},
		{"abcd", 4, "abc"},
	}
	for _, tc := range tests {
		if got := fitLine(tc.line, tc.width); got != tc.want {
			t.Errorf("fitLine(%q, %d): got %q, want %q", tc.line, tc.width, got, tc.want)
		}
	}
}
