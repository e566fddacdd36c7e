package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// allHang points every service at a server that takes requests and never
// answers, and the queue at one that never answers either.
func allHang(t *testing.T) envOption {
	return func(c *Config) {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		t.Cleanup(s.Close)
		c.OrderURL, c.OrderAdminURL, c.InventoryURL, c.PaymentURL, c.ShippingURL = s.URL, s.URL, s.URL, s.URL, s.URL
		c.Queue = newStuckQueue(t)
	}
}

// A page asks its services at once: with every service hanging it answers
// after about one upstream timeout, not one per part of the page. Asked
// one after another, two parts would take two whole timeouts: that, not
// how fast this machine is, is what the bound tells apart.
func TestPagesWaitForOneUpstreamTimeout(t *testing.T) {
	const timeout = time.Second
	e := newEnv(t, allHang(t), func(c *Config) { c.UpstreamTimeout = timeout })
	c := newClient(t, e.srv)
	for _, path := range []string{"/orders", "/orders/ord-1", "/faults", "/queue", "/queue/dlq/1", "/stock"} {
		start := time.Now()
		r := c.get(path, false)
		took := time.Since(start)
		if r.Code != http.StatusOK && r.Code != http.StatusNotFound {
			t.Errorf("%s: got %d, want the page", path, r.Code)
		}
		mustContain(t, path, r.Body, "Down.")
		if limit := 2 * timeout; took >= limit {
			t.Errorf("%s: took %s, want under %s (one upstream timeout of %s, not one per part)", path, took.Round(time.Millisecond), limit, timeout)
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
