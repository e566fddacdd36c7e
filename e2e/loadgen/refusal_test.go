package loadgen

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(1994, 11, 6, 8, 49, 7, 0, time.UTC)
	tests := []struct {
		name   string
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"seconds", "1", time.Second, true},
		{"zero", "0", 0, true},
		{"spaces", " 120 ", 2 * time.Minute, true},
		{"leading zeros", "007", 7 * time.Second, true},
		{"too large for a Duration", "99999999999999999999", maxRetryAfterSeconds * time.Second, true},
		{"IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", 30 * time.Second, true},
		{"RFC 850 date", "Sunday, 06-Nov-94 08:49:37 GMT", 30 * time.Second, true},
		{"asctime date", "Sun Nov  6 08:49:37 1994", 30 * time.Second, true},
		{"date passed", "Sun, 06 Nov 1994 08:00:00 GMT", 0, true},
		{"empty", "", 0, false},
		{"negative", "-1", 0, false},
		{"fraction", "1.5", 0, false},
		{"garbage", "soon", 0, false},
		{"bad date", "Sun, 32 Nov 1994 08:49:37 GMT", 0, false},
		{"date in another zone", "Sun, 06 Nov 1994 08:49:37 +0100", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.value, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// The client hands the parsed Retry-After over with the status, and only
// a 503 or 429 with a usable one is a refusal.
func TestStatusErrorRetryAfter(t *testing.T) {
	tests := []struct {
		name        string
		code        int
		retryAfter  string
		wantAfter   time.Duration
		wantHas     bool
		wantRefused bool
	}{
		{"503 with seconds", http.StatusServiceUnavailable, "1", time.Second, true, true},
		{"429 with seconds", http.StatusTooManyRequests, "2", 2 * time.Second, true, true},
		{"503 with zero", http.StatusServiceUnavailable, "0", 0, true, true},
		{"503 without", http.StatusServiceUnavailable, "", 0, false, false},
		{"503 with garbage", http.StatusServiceUnavailable, "later", 0, false, false},
		{"500 with seconds", http.StatusInternalServerError, "1", time.Second, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(0, nil)
			api.refuse, api.refuseCode, api.retryAfter = 1, tt.code, tt.retryAfter
			srv := httptest.NewServer(api)
			defer srv.Close()
			c, err := NewClient(srv.URL, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Place(context.Background(), "k", OrderRequest{CustomerID: "c", Items: []Line{{SKU: "SKU-1", Quantity: 1}}})
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("Place: got %v, want a *StatusError", err)
			}
			if se.Code != tt.code || se.RetryAfter != tt.wantAfter || se.HasRetryAfter != tt.wantHas || se.Refused() != tt.wantRefused {
				t.Errorf("got code %d, RetryAfter %v (has %v), refused %v; want %d, %v (%v), %v",
					se.Code, se.RetryAfter, se.HasRetryAfter, se.Refused(), tt.code, tt.wantAfter, tt.wantHas, tt.wantRefused)
			}
			if !strings.Contains(se.Body, "too-many-open-orders") {
				t.Errorf("body %q, want the problem", se.Body)
			}
		})
	}
}

// A refused order is sent again with its key after the Retry-After, as
// often as it is refused, and counted as refused, not as an error; a 503
// without a usable Retry-After keeps the short bounded retry.
func TestRunRefusedThenPlaced(t *testing.T) {
	passed := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name        string
		code        int
		retryAfter  string
		refuse      int
		wantPlaced  int
		wantErrors  int
		wantRefused int
		wantRetries int
	}{
		{"503 Retry-After 0 twice", http.StatusServiceUnavailable, "0", 2, 1, 0, 2, 0},
		{"429 Retry-After 0 twice", http.StatusTooManyRequests, "0", 2, 1, 0, 2, 0},
		{"503 Retry-After a passed date twice", http.StatusServiceUnavailable, passed, 2, 1, 0, 2, 0},
		{"503 Retry-After 1 once", http.StatusServiceUnavailable, "1", 1, 1, 0, 1, 0},
		{"refused more often than other errors are retried", http.StatusServiceUnavailable, "0", 5, 1, 0, 5, 0},
		{"503 without Retry-After", http.StatusServiceUnavailable, "", 5, 0, 1, 0, 2},
		{"503 with an unparsable Retry-After", http.StatusServiceUnavailable, "-1", 5, 0, 1, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(time.Millisecond, nil)
			api.refuse, api.refuseCode, api.retryAfter = tt.refuse, tt.code, tt.retryAfter
			srv := httptest.NewServer(api)
			defer srv.Close()
			rep, err := Run(context.Background(), Config{URL: srv.URL, Concurrency: 1, Count: 1, PollInterval: 10 * time.Millisecond, RunID: "refused"})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Placed != tt.wantPlaced || rep.PlaceErrors != tt.wantErrors || rep.PlaceRefused != tt.wantRefused || rep.PlaceRetries != tt.wantRetries {
				t.Errorf("got placed %d, errors %d (%v), refused %d, retries %d; want %d, %d, %d, %d",
					rep.Placed, rep.PlaceErrors, rep.ErrorKinds, rep.PlaceRefused, rep.PlaceRetries,
					tt.wantPlaced, tt.wantErrors, tt.wantRefused, tt.wantRetries)
			}
			api.mu.Lock()
			defer api.mu.Unlock()
			wantAttempts := tt.wantRefused + tt.wantRetries + 1
			if api.n != tt.wantPlaced || len(api.attempts) != 1 || api.attempts["refused-0"] != wantAttempts {
				t.Errorf("got %d orders on the server from POSTs per key %v, want %d from %d POSTs with key refused-0",
					api.n, api.attempts, tt.wantPlaced, wantAttempts)
			}
		})
	}
}

// An order refused until placing ends is given up then, as a place error,
// rather than keeping the run going.
func TestRunRefusedUntilPlacingEnds(t *testing.T) {
	api := newFakeAPI(time.Millisecond, nil)
	api.refuse, api.retryAfter = 1<<30, "1"
	srv := httptest.NewServer(api)
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Concurrency: 1, Count: 1, Duration: 500 * time.Millisecond, RunID: "end"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Placed != 0 || rep.PlaceErrors != 1 || rep.ErrorKinds["HTTP 503"] != 1 || rep.PlaceRefused == 0 || rep.Interrupted {
		t.Errorf("got placed %d, errors %d %v, refused %d, interrupted %v; want 0, 1 HTTP 503, some, false",
			rep.Placed, rep.PlaceErrors, rep.ErrorKinds, rep.PlaceRefused, rep.Interrupted)
	}
	if !strings.Contains(rep.LastError, "retry after 1s") || !strings.Contains(rep.LastError, "too-many-open-orders") {
		t.Errorf("last error %q, want the refusal with its Retry-After and problem", rep.LastError)
	}
}

// With a count and no duration, an order refused for longer than
// WaitTimeout is given up as a place error, so that a system stuck at its
// open-order limit ends the run with its report (and loadgen's exit 1)
// instead of keeping it going until Ctrl-C.
func TestRunCountRefusedPastWaitTimeout(t *testing.T) {
	api := newFakeAPI(time.Millisecond, nil)
	api.refuse, api.retryAfter = 1<<30, "0"
	srv := httptest.NewServer(api)
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Concurrency: 1, Count: 1, WaitTimeout: 300 * time.Millisecond, RunID: "stuck"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Placed != 0 || rep.PlaceErrors != 1 || rep.ErrorKinds["HTTP 503"] != 1 || rep.PlaceRefused < 2 || rep.Interrupted {
		t.Errorf("got placed %d, errors %d %v, refused %d, interrupted %v; want 0, 1 HTTP 503, at least 2, false",
			rep.Placed, rep.PlaceErrors, rep.ErrorKinds, rep.PlaceRefused, rep.Interrupted)
	}
}

// signalWriter calls fn once, the first time what was written to it
// contains want.
type signalWriter struct {
	want string
	fn   func()

	mu   sync.Mutex
	buf  strings.Builder
	done bool
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		w.fn()
	}
	return len(p), nil
}

// When the run's context ends while a refused order waits out its
// Retry-After, the run stops then: it does not send the order again, nor
// count it as an error (interrupted, as any order in flight).
func TestRunInterruptedDuringRetryAfter(t *testing.T) {
	api := newFakeAPI(time.Millisecond, nil)
	api.refuse, api.retryAfter = 1<<30, "3600"
	srv := httptest.NewServer(api)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The progress line counts the refusal before the wait starts.
	progress := &signalWriter{want: "refused 1", fn: cancel}
	type result struct {
		rep Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := Run(ctx, Config{
			URL: srv.URL, Concurrency: 1, Count: 1, RunID: "stop", MaxRetryAfter: time.Hour,
			Progress: progress, ProgressEvery: 5 * time.Millisecond,
		})
		done <- result{rep, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		// A guard against a hang, not a bound on the latency: without
		// the context, the wait lasts the hour asked for.
		t.Fatal("Run still waits a minute after its context ended, want it to stop waiting out the Retry-After")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	rep := res.rep
	if !rep.Interrupted || rep.Placed != 0 || rep.PlaceErrors != 0 || rep.PlaceRefused != 1 {
		t.Errorf("got interrupted %v, placed %d, errors %d, refused %d; want true, 0, 0, 1",
			rep.Interrupted, rep.Placed, rep.PlaceErrors, rep.PlaceRefused)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if got := api.attempts["stop-0"]; got != 1 {
		t.Errorf("got %d POSTs of the order, want 1 (not sent again after the context ended)", got)
	}
}

// In rate mode a refused order waits for its Retry-After without holding
// an in-flight slot: with room for one request in flight and every order
// refused once for three seconds, the new orders still go out on their
// schedule (all ten due within 90ms) before any is sent again, instead of
// queueing behind the waits and going out in a burst later.
func TestRunPacedRefusalsKeepTheSchedule(t *testing.T) {
	const count = 10
	api := newFakeAPI(time.Millisecond, nil)
	api.refuse, api.retryAfter = 1, "3"
	srv := httptest.NewServer(api)
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Rate: 100, Concurrency: 1, Count: count, PollInterval: 10 * time.Millisecond, RunID: "paced"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Placed != count || rep.PlaceErrors != 0 || rep.PlaceRefused != count {
		t.Errorf("got placed %d, errors %d, refused %d; want %d, 0, %d", rep.Placed, rep.PlaceErrors, rep.PlaceRefused, count, count)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.postKeys) != 2*count {
		t.Fatalf("got %d POSTs, want %d (each order refused once, then placed)", len(api.postKeys), 2*count)
	}
	seen := map[string]bool{}
	for n, key := range api.postKeys[:count] {
		if seen[key] {
			t.Fatalf("POST %d sends %s again before the other orders were sent once (POSTs %q), want the %d first sends first",
				n, key, api.postKeys, count)
		}
		seen[key] = true
	}
}
