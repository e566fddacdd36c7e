package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue/backend"
)

func TestPasswordsAreMasked(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.QueueName = "postgres://console:s3cret@db:5432/queue?sslmode=disable"
		c.PaymentURL = strings.Replace(c.PaymentURL, "http://", "http://admin:s3cret@", 1)
		c.ShippingURL = strings.Replace(deadURL(t), "http://", "http://admin:s3cret@", 1) // down: named in the banner
	})
	c := newClient(t, e.srv)
	for _, path := range []string{"/queue", "/faults", "/banner", "/orders"} {
		mustNotContain(t, path, c.get(path, false).Body, "s3cret")
	}
	mustContain(t, "/queue", c.get("/queue", false).Body, "postgres://console:xxxxx@db:5432/queue")
	mustContain(t, "/faults", c.get("/faults", false).Body, "http://admin:xxxxx@127.0.0.1:", "is down (http://admin:xxxxx@127.0.0.1:")

	// The queue module quotes the URL in some of its errors.
	q := NewQueueStore("bogus://console:s3cret@db/queue")
	_, err := q.Stats(t.Context())
	if !errors.Is(err, ErrQueueUnavailable) || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "console:xxxxx@db") {
		t.Errorf("open error: got %v, want ErrQueueUnavailable with the password masked", err)
	}
}

// RedactURL masks passwords but shows a SQLite URL exactly as given: the
// queue module does not percent-decode its path, so "with%20space" would
// name another file than the services' (pasted into queuectl --queue-url).
func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://console:s3cret@db:5432/queue", "postgres://console:xxxxx@db:5432/queue"},
		{"postgres://db/queue?password=s3cret&sslmode=disable", "postgres://db/queue?password=xxxxx&sslmode=disable"},
		{"postgres://console@db/queue", "postgres://console@db/queue"},
		{"sqlite:///queue/queue.db", "sqlite:///queue/queue.db"},
		{"sqlite://data/queue.db", "sqlite://data/queue.db"},
		{"sqlite:///tmp/x/with space/queue.db", "sqlite:///tmp/x/with space/queue.db"},
		{"sqlite:///tmp/x/100%/queue.db", "sqlite:///tmp/x/100%/queue.db"},
		{"sqlite:///tmp/x/a%20b/queue.db?lease=30s", "sqlite:///tmp/x/a%20b/queue.db?lease=30s"},
		{"http://admin:s3cret@payment:8082", "http://admin:xxxxx@payment:8082"},
		{"postgres://console:s3%zz@db/queue", "postgres://…"}, // does not parse: the scheme only
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The default HTTP client answers a redirect as it is instead of following
// it to whatever host it names.
func TestUpstreamRedirectsAreNotFollowed(t *testing.T) {
	var followed atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Add(1) }))
	t.Cleanup(elsewhere.Close)
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(redirecting.Close)
	e := newEnv(t, func(c *Config) { c.PaymentURL = redirecting.URL })
	c := newClient(t, e.srv)
	// Shown as a bad answer, not relayed as a 302 without its Location.
	mustContain(t, "/faults", c.get("/faults", false).Body, "a redirect or other status the service&#39;s API never sends (302 Found)")
	if r := c.post("/faults/payment/poison", map[string][]string{"preset": {"true"}}, true); r.Code < 400 {
		t.Errorf("setting a flag on a redirecting service: got %d, want an error status (a 3xx relayed without its Location breaks the page)", r.Code)
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("requests that followed the redirect: got %d, want 0", n)
	}
}

// stuckQueue is a queue that never answers: each call returns only when its
// context ends (or the test does). Its calls count in calls, if set.
type stuckQueue struct {
	stop  chan struct{}
	calls *inFlight
}

func newStuckQueue(t *testing.T) *stuckQueue {
	q := &stuckQueue{stop: make(chan struct{})}
	t.Cleanup(func() { close(q.stop) })
	return q
}

func (q *stuckQueue) wait(ctx context.Context) error {
	if q.calls != nil {
		q.calls.enter()
		defer q.calls.leave()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-q.stop:
		return errors.New("test over")
	}
}

func (q *stuckQueue) Stats(ctx context.Context) ([]backend.TopicStats, error) {
	return nil, q.wait(ctx)
}
func (q *stuckQueue) DeadLetters(ctx context.Context, _ backend.DeadLetterFilter) ([]backend.DeadLetter, error) {
	return nil, q.wait(ctx)
}
func (q *stuckQueue) DeadLetter(ctx context.Context, _ int64) (backend.DeadLetter, error) {
	return backend.DeadLetter{}, q.wait(ctx)
}
func (q *stuckQueue) Replay(ctx context.Context, _ int64) error { return q.wait(ctx) }
func (q *stuckQueue) ReplayAll(ctx context.Context, _ backend.DeadLetterFilter) (int, error) {
	return 0, q.wait(ctx)
}
func (q *stuckQueue) Purge(ctx context.Context, _ backend.DeadLetterFilter) (int, error) {
	return 0, q.wait(ctx)
}

func TestQueueCallsAreBounded(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Queue = newStuckQueue(t); c.UpstreamTimeout = 100 * time.Millisecond })
	c := newClient(t, e.srv)
	c.token() // before the requests under test, which must not share the client
	for _, tc := range []struct {
		method, path string
		status       int
		want         string
	}{
		{http.MethodGet, "/queue", http.StatusOK, "queue unavailable: no answer within 100ms"},
		{http.MethodGet, "/queue/dlq/1", http.StatusOK, "queue unavailable: no answer within 100ms"},
		// The replay may have been committed when the time ran out.
		{http.MethodPost, "/queue/dlq/1/replay", http.StatusServiceUnavailable,
			"Dead letter 1 may or may not be replayed: queue unavailable: no answer within 100ms. Look at the dead-letter queue"},
		// Replaying or purging them all gets bulkQueueTimeout instead
		// (work that grows with the dead letters), not tested here.
	} {
		answered := make(chan resp, 1)
		go func() {
			if tc.method == http.MethodGet {
				answered <- c.get(tc.path, false)
				return
			}
			answered <- c.post(tc.path, map[string][]string{"confirm": {"yes"}}, false)
		}()
		select {
		case r := <-answered:
			if r.Code != tc.status {
				t.Errorf("%s %s: got %d, want %d", tc.method, tc.path, r.Code, tc.status)
			}
			mustContain(t, tc.path, r.Body, tc.want)
		case <-time.After(30 * time.Second):
			t.Fatalf("%s %s: no answer after 30s, want one after the 100ms upstream timeout", tc.method, tc.path)
		}
	}
}

func TestQueueStoreOpenDoesNotHoldUpOthers(t *testing.T) {
	s := NewQueueStore("sqlite:///nowhere/queue.db")
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.open = func(ctx context.Context) (backend.Backend, error) {
		once.Do(func() { close(entered) })
		<-release // a driver that does not heed its context
		return nil, errors.New("no queue here")
	}
	unblock := sync.OnceFunc(func() { close(release) })
	first := make(chan error, 1)
	go func() {
		_, err := s.Stats(context.Background())
		first <- err
	}()
	defer func() {
		unblock()
		<-first
	}()
	<-entered

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() {
		_, err := s.Stats(ctx)
		second <- err
	}()
	select {
	case err := <-second:
		if !errors.Is(err, ErrQueueUnavailable) {
			t.Errorf("second request: got %v, want ErrQueueUnavailable", err)
		}
	case <-time.After(30 * time.Second):
		unblock()
		<-second
		t.Fatal("a request waited behind another's open past its own deadline")
	}
}

func TestQueueStoreOpensNothingAfterClose(t *testing.T) {
	e := newEnv(t)
	if _, err := e.queue.Stats(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := e.queue.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.queue.Stats(t.Context()); !errors.Is(err, ErrQueueUnavailable) {
		t.Errorf("after Close: got %v, want ErrQueueUnavailable", err)
	}
}

func TestFlashLinksStayOnTheConsole(t *testing.T) {
	for _, tc := range []struct {
		link string
		ok   bool
	}{
		{"/orders/ord-1", true},
		{"/queue#dlq", true},
		{"/orders?status=COMPLETED", true},
		{"", false},
		{"orders", false},
		{"//evil.example/x", false},
		{"/\\evil.example/x", false},
		{"/\t/evil.example/x", false},
		{"https://evil.example/", false},
		{"javascript:alert(1)", false},
	} {
		if got := localPath(tc.link); got != tc.ok {
			t.Errorf("localPath(%q): got %v, want %v", tc.link, got, tc.ok)
		}
	}
	// Through the cookie another page of this host could plant.
	e := newEnv(t)
	data, _ := json.Marshal(flash{Kind: "ok", Msg: "Done.", Link: "//evil.example/x", LinkText: "Open"})
	req := httptest.NewRequest(http.MethodGet, "/stock", nil)
	req.Host = "127.0.0.1:8090"
	req.AddCookie(&http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString(data)})
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	mustContain(t, "planted flash", rec.Body.String(), "Done.")
	mustNotContain(t, "planted flash", rec.Body.String(), "evil.example")
}

// blockingQueue's Stats runs until its context ends, then until the test
// releases it: a handler slow to finish after being cancelled.
type blockingQueue struct {
	stuckQueue
	entered, cancelled, release chan struct{}
}

func (q *blockingQueue) Stats(ctx context.Context) ([]backend.TopicStats, error) {
	close(q.entered)
	select {
	case <-ctx.Done():
		close(q.cancelled)
		<-q.release
	case <-q.release: // the test gave up
	}
	return nil, ctx.Err()
}

func TestServeCancelsRequestsAfterTheShutdownTimeout(t *testing.T) {
	q := &blockingQueue{stuckQueue: *newStuckQueue(t), entered: make(chan struct{}), cancelled: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, func(c *Config) {
		c.Queue = q
		c.UpstreamTimeout = MaxUpstreamTimeout
		c.ShutdownTimeout = 100 * time.Millisecond
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ctx, ln) }()
	asked := make(chan struct{})
	go func() {
		defer close(asked)
		resp, err := http.Get("http://" + ln.Addr().String() + "/queue/topics")
		if err == nil {
			resp.Body.Close()
		}
	}()
	defer func() { <-asked }()
	<-q.entered

	stop()
	select {
	case <-q.cancelled:
	case <-time.After(30 * time.Second):
		close(q.release)
		t.Fatal("the request's context did not end after the shutdown timeout")
	}
	// The caller closes the queue when Serve returns: not while a handler
	// still uses it. (This wait only gives a wrong Serve time to return.)
	select {
	case err := <-served:
		close(q.release)
		t.Fatalf("Serve returned (%v) while a handler was still running", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(q.release)
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: got %v, want nil (a slow request is not the console's failure)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after the last handler")
	}
}
