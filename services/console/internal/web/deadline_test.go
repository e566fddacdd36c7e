package web

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// inFlight counts the calls a hanging fake is holding: how many now, how
// many since reset, and the most at once.
type inFlight struct {
	mu               sync.Mutex
	now, total, most int
}

func (f *inFlight) enter() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now++
	f.total++
	f.most = max(f.most, f.now)
}

func (f *inFlight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now--
}

// reset waits (up to 30s) until no call is held, then starts counting
// afresh: a call the previous page gave up may take a moment to end here.
func (f *inFlight) reset(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f.mu.Lock()
		if f.now == 0 {
			f.total, f.most = 0, 0
			f.mu.Unlock()
			return
		}
		n := f.now
		f.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%d calls still held 30s after their page", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *inFlight) counts() (total, most int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total, f.most
}

// allHang points every service at a server that takes requests and never
// answers, and the queue at one that never answers either; both count
// their calls in calls.
func allHang(t *testing.T, calls *inFlight) envOption {
	return func(c *Config) {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.enter()
			defer calls.leave()
			<-r.Context().Done()
		}))
		t.Cleanup(s.Close)
		c.OrderURL, c.OrderAdminURL, c.InventoryURL, c.PaymentURL, c.ShippingURL = s.URL, s.URL, s.URL, s.URL, s.URL
		q := newStuckQueue(t)
		q.calls = calls
		c.Queue = q
	}
}

// A page asks its services at once: with every service hanging it answers
// after about one upstream timeout, not one per part of the page. Asked
// one after another, a part would be asked only once the one before it
// had given up; asked at once, every call of a page is held at the same
// time. That, not how fast this machine is, is what the test tells apart.
func TestPagesWaitForOneUpstreamTimeout(t *testing.T) {
	// Parts asked at once reach the fakes within this of each other,
	// however busy the machine: it is the slack, not a bound on speed.
	const timeout = 2 * time.Second
	calls := &inFlight{}
	e := newEnv(t, allHang(t, calls), func(c *Config) { c.UpstreamTimeout = timeout })
	c := newClient(t, e.srv)
	// Every page asks several things (its parts, and the services'
	// health for the banner).
	for _, path := range []string{"/orders", "/orders/ord-1", "/faults", "/queue", "/queue/dlq/1", "/stock"} {
		calls.reset(t)
		start := time.Now()
		r := c.get(path, false)
		took := time.Since(start)
		if r.Code != http.StatusOK && r.Code != http.StatusNotFound {
			t.Errorf("%s: got %d, want the page", path, r.Code)
		}
		mustContain(t, path, r.Body, "Down.")
		if total, most := calls.counts(); total < 2 || most != total {
			t.Errorf("%s: %d calls, at most %d held at once; want several, all held at once (asked together, not one after another gave up)",
				path, total, most)
		}
		// Only against a hang: the page's own deadline is two timeouts.
		if took >= 30*time.Second {
			t.Errorf("%s: took %s, want it bounded by the upstream timeout of %s", path, took.Round(time.Millisecond), timeout)
		}
	}
}

func TestUpstreamTimeoutMustFitTheWriteTimeout(t *testing.T) {
	tests := []struct {
		timeout time.Duration
		ok      bool
	}{
		{3 * time.Second, true},
		{MaxUpstreamTimeout, true},
		{MaxUpstreamTimeout + time.Millisecond, false},
		{time.Minute, false},
	}
	for _, tc := range tests {
		err := CheckUpstreamTimeout(tc.timeout)
		if (err == nil) != tc.ok {
			t.Errorf("CheckUpstreamTimeout(%s): got %v, want ok=%v", tc.timeout, err, tc.ok)
		}
	}
	if got, want := bulkQueueTimeout(DefaultUpstreamTimeout)+DefaultUpstreamTimeout, writeTimeout-replyMargin; got != want {
		t.Errorf("bulk replay and the page after it: got %s, want %s", got, want)
	}
}
