package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/logtest"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
)

type fixture struct {
	srv *admin.Server
	reg *faults.Registry
	b   backend.Backend
}

func newFixture(t *testing.T, ready func(context.Context) error) fixture {
	t.Helper()
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags("payment")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := queue.OpenBackend(context.Background(), queue.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "queue.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	srv, err := admin.New(admin.Config{
		Service: "payment",
		Ready:   ready,
		Faults:  reg,
		Queue:   b,
		OutboxPending: func(context.Context) (int64, error) {
			return 7, nil
		},
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = io.WriteString(w, "# metrics\n")
		}),
		Routes: func(e *echo.Echo) {
			e.GET("/state", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]int{"charges": 1}) })
			e.GET("/boom", func(echo.Context) error { return errors.New("secret database detail") })
			e.GET("/missing", func(echo.Context) error { return fmt.Errorf("%w: payment p-1", admin.ErrNotFound) })
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{srv: srv, reg: reg, b: b}
}

func (f fixture) do(t *testing.T, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

func TestRoutesStatusAndContentType(t *testing.T) {
	notReady := errors.New("queue unreachable")
	ready := true
	f := newFixture(t, func(context.Context) error {
		if ready {
			return nil
		}
		return notReady
	})
	tests := []struct {
		method, path, body string
		want               int
		wantType           string
		wantField          string
	}{
		{"GET", "/healthz", "", 200, "application/json", ""},
		{"GET", "/readyz", "", 200, "application/json", ""},
		{"GET", "/faults", "", 200, "application/json", ""},
		{"GET", "/faults/payment_decline_rate", "", 200, "application/json", ""},
		{"GET", "/faults/nope", "", 404, admin.ProblemContentType, ""},
		{"PUT", "/faults/payment_decline_rate", `{"value":"0.5"}`, 200, "application/json", ""},
		{"POST", "/faults/payment_decline_rate", `{"value":0.25}`, 200, "application/json", ""},
		{"PUT", "/faults/crash_mid_handler", `{"value":false}`, 200, "application/json", ""},
		{"PUT", "/faults/payment_decline_rate", `{"value":"2"}`, 400, admin.ProblemContentType, "value"},
		{"PUT", "/faults/payment_decline_rate", `{}`, 400, admin.ProblemContentType, "value"},
		{"PUT", "/faults/payment_decline_rate", `{"value":"0.1","extra":1}`, 400, admin.ProblemContentType, "extra"},
		{"PUT", "/faults/payment_decline_rate", `{"value":`, 400, admin.ProblemContentType, ""},
		{"PUT", "/faults/payment_decline_rate", `{"value":[1]}`, 400, admin.ProblemContentType, "value"},
		{"PUT", "/faults/nope", `{"value":"1"}`, 404, admin.ProblemContentType, ""},
		{"DELETE", "/faults/payment_decline_rate", "", 200, "application/json", ""},
		{"GET", "/dlq", "", 200, "application/json", ""},
		{"GET", "/dlq?limit=0", "", 400, admin.ProblemContentType, "limit"},
		{"GET", "/dlq?topic=bad%20topic", "", 400, admin.ProblemContentType, "topic"},
		{"GET", "/dlq/42", "", 404, admin.ProblemContentType, ""},
		{"GET", "/dlq/abc", "", 400, admin.ProblemContentType, "id"},
		{"POST", "/dlq/42/replay", "", 404, admin.ProblemContentType, ""},
		{"POST", "/dlq/replay", "", 200, "application/json", ""},
		{"DELETE", "/dlq", "", 200, "application/json", ""},
		{"DELETE", "/dlq?topics=payment.commands", "", 400, admin.ProblemContentType, "topics"},
		{"DELETE", "/dlq?topic=", "", 400, admin.ProblemContentType, "topic"},
		{"DELETE", "/dlq", "null", 400, admin.ProblemContentType, ""},
		{"DELETE", "/dlq", `{"topic":""}`, 400, admin.ProblemContentType, "topic"},
		{"POST", "/dlq/replay", `{"group":""}`, 400, admin.ProblemContentType, "group"},
		{"POST", "/dlq/replay", `["payment.commands"]`, 400, admin.ProblemContentType, ""},
		{"DELETE", "/dlq?limit=5", "", 400, admin.ProblemContentType, "limit"},
		{"POST", "/dlq/replay?group=payment&x=1", "", 400, admin.ProblemContentType, "x"},
		{"GET", "/dlq?lmit=5", "", 400, admin.ProblemContentType, "lmit"},
		{"GET", "/dlq/42?topic=x", "", 400, admin.ProblemContentType, "topic"},
		{"POST", "/dlq/42/replay?all=1", "", 400, admin.ProblemContentType, "all"},
		{"GET", "/queue/stats", "", 200, "application/json", ""},
		{"GET", "/outbox", "", 200, "application/json", ""},
		{"GET", "/outbox?x=1", "", 400, admin.ProblemContentType, "x"},
		{"GET", "/metrics", "", 200, "text/plain", ""},
		{"GET", "/debug/pprof/", "", 200, "text/html", ""},
		{"GET", "/debug/pprof/goroutine?debug=1", "", 200, "text/plain", ""},
		{"GET", "/debug/pprof/heap", "", 200, "application/octet-stream", ""},
		{"GET", "/debug/pprof/cmdline", "", 200, "text/plain", ""},
		{"GET", "/state", "", 200, "application/json", ""},
		{"GET", "/boom", "", 500, admin.ProblemContentType, ""},
		{"GET", "/missing", "", 404, admin.ProblemContentType, ""},
		{"GET", "/no/such/route", "", 404, admin.ProblemContentType, ""},
		{"PATCH", "/healthz", "", 405, admin.ProblemContentType, ""},
		{"PUT", "/faults/payment_latency", `{"value":"` + strings.Repeat("x", 70<<10) + `"}`, 413, admin.ProblemContentType, ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			code, h, body := f.do(t, tc.method, tc.path, tc.body)
			if code != tc.want {
				t.Fatalf("status: got %d, want %d (body %s)", code, tc.want, body)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
				t.Errorf("Content-Type: got %q, want %q", ct, tc.wantType)
			}
			if tc.wantType != admin.ProblemContentType {
				return
			}
			var p admin.Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("problem body %s: %v", body, err)
			}
			if p.Status != tc.want || p.Title == "" || p.Type == "" {
				t.Errorf("problem: got %+v, want status %d with a title and type", p, tc.want)
			}
			if p.Field != tc.wantField {
				t.Errorf("problem field: got %q, want %q", p.Field, tc.wantField)
			}
			if strings.Contains(string(body), "secret") {
				t.Errorf("500 body leaks the error: %s", body)
			}
		})
	}

	if _, _, body := f.do(t, "GET", "/outbox", ""); string(body) != `{"pending":7}`+"\n" {
		t.Errorf("GET /outbox: got %s, want {\"pending\":7}", body)
	}

	// The detail names the dead letter once.
	if _, _, body := f.do(t, "GET", "/dlq/42", ""); !strings.Contains(string(body), `"detail":"dead letter 42: not found"`) {
		t.Errorf("GET /dlq/42: got %s, want the detail \"dead letter 42: not found\"", body)
	}

	ready = false
	code, _, body := f.do(t, "GET", "/readyz", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), notReady.Error()) {
		t.Errorf("readyz when not ready: got %d %s, want 503 naming the cause", code, body)
	}
}

// GET /readyz answers 503 within its 2 s even when the readiness check
// hangs without heeding its context (a database on a frozen disk).
func TestReadyzAnswersWhileTheCheckHangs(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, err := admin.New(admin.Config{Service: "payment", Ready: func(context.Context) error { <-release; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		answered <- rec.Code
	}()
	select {
	case code := <-answered:
		if code != http.StatusServiceUnavailable {
			t.Errorf("GET /readyz while the check hangs: got %d, want 503", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("GET /readyz while the check hangs: no answer within 10s")
	}
}

func TestSetFault(t *testing.T) {
	f := newFixture(t, nil)
	code, _, body := f.do(t, "PUT", "/faults/payment_decline_rate", `{"value":"0.5"}`)
	if code != 200 {
		t.Fatalf("PUT: got %d %s, want 200", code, body)
	}
	var st faults.State
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st.Value != "0.5" || st.Source != "api" {
		t.Errorf("response: got value %q source %q, want 0.5 api", st.Value, st.Source)
	}
	if got, want := f.reg.Rate(faults.PaymentDeclineRate), 0.5; got != want {
		t.Errorf("registry: got %v, want %v", got, want)
	}
	_, _, body = f.do(t, "GET", "/faults", "")
	var all []faults.State
	if err := json.Unmarshal(body, &all); err != nil {
		t.Fatal(err)
	}
	if got, want := len(all), len(faults.ServiceFlags("payment")); got != want {
		t.Errorf("GET /faults: got %d flags, want %d", got, want)
	}
}

func putDeadLetter(t *testing.T, b backend.Backend, topic, group, uuid string) int64 {
	t.Helper()
	now := time.Now().UTC()
	err := b.DeadLetters().Put(context.Background(), backend.DeadLetter{
		MessageUUID: uuid, Topic: topic, ConsumerGroup: group, Payload: []byte(`{"x":1}`),
		Metadata: map[string]string{"type": "t", "attempt": "5"}, Attempts: 5, LastError: "boom",
		FirstFailedAt: now, LastFailedAt: now, DeadAt: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	dls, err := b.DeadLetters().List(context.Background(), backend.DeadLetterFilter{Topic: topic, ConsumerGroup: group})
	if err != nil {
		t.Fatal(err)
	}
	for _, dl := range dls {
		if dl.MessageUUID == uuid {
			return dl.ID
		}
	}
	t.Fatalf("dead letter %s not stored", uuid)
	return 0
}

func TestDeadLetterRoutes(t *testing.T) {
	f := newFixture(t, nil)
	id := putDeadLetter(t, f.b, "payment.commands", "payment", "m-1")
	putDeadLetter(t, f.b, "payment.commands", "payment", "m-2")
	putDeadLetter(t, f.b, "other.topic", "payment", "m-3")

	code, _, body := f.do(t, "GET", "/dlq?topic=payment.commands", "")
	var list []admin.DeadLetter
	if err := json.Unmarshal(body, &list); err != nil || code != 200 {
		t.Fatalf("GET /dlq: got %d %s (%v)", code, body, err)
	}
	if got, want := len(list), 2; got != want {
		t.Fatalf("GET /dlq?topic: got %d dead letters, want %d", got, want)
	}
	code, _, body = f.do(t, "GET", fmt.Sprintf("/dlq/%d", id), "")
	var one admin.DeadLetter
	if err := json.Unmarshal(body, &one); err != nil || code != 200 {
		t.Fatalf("GET /dlq/id: got %d %s", code, body)
	}
	if one.Payload == nil || *one.Payload != `{"x":1}` || one.LastError != "boom" {
		t.Errorf("dead letter: got %+v, want payload {\"x\":1} and last error boom", one)
	}

	// Replay one: it reaches its group's subscriber with the same UUID.
	sub, err := f.b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "payment"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "payment.commands")
	if err != nil {
		t.Fatal(err)
	}
	code, _, body = f.do(t, "POST", fmt.Sprintf("/dlq/%d/replay", id), "")
	if code != 200 {
		t.Fatalf("replay: got %d %s, want 200", code, body)
	}
	select {
	case m := <-msgs:
		if m.UUID != "m-1" || string(m.Payload) != `{"x":1}` {
			t.Errorf("replayed message: got %s %s, want m-1 {\"x\":1}", m.UUID, m.Payload)
		}
		m.Ack()
	case <-ctx.Done():
		t.Fatal("replayed message never arrived")
	}
	_ = sub.Close()
	if code, _, _ := f.do(t, "GET", fmt.Sprintf("/dlq/%d", id), ""); code != 404 {
		t.Errorf("GET replayed dead letter: got %d, want 404", code)
	}

	// Replay the rest of the topic with a body filter, then purge all.
	code, _, body = f.do(t, "POST", "/dlq/replay", `{"topic":"payment.commands"}`)
	if code != 200 || !strings.Contains(string(body), `"replayed":1`) {
		t.Errorf("replay all of a topic: got %d %s, want replayed 1", code, body)
	}
	// A purge honours its filter, in the query or the body; a misspelt
	// filter is refused, not taken for "everything".
	code, _, body = f.do(t, "DELETE", "/dlq?topics=other.topic", "")
	if code != 400 || !strings.Contains(string(body), `"field":"topics"`) {
		t.Errorf("purge with ?topics=: got %d %s, want 400 naming topics", code, body)
	}
	code, _, body = f.do(t, "DELETE", "/dlq", `{"topic":"payment.commands"}`)
	if code != 200 || !strings.Contains(string(body), `"purged":0`) {
		t.Errorf("purge of a topic with none left: got %d %s, want purged 0", code, body)
	}
	code, _, body = f.do(t, "DELETE", "/dlq", `{"topic":"other.topic"}`)
	if code != 200 || !strings.Contains(string(body), `"purged":1`) {
		t.Errorf("purge of other.topic: got %d %s, want purged 1", code, body)
	}
	putDeadLetter(t, f.b, "payment.commands", "payment", "m-4")
	code, _, body = f.do(t, "DELETE", "/dlq?group=payment", "")
	if code != 200 || !strings.Contains(string(body), `"purged":1`) {
		t.Errorf("purge of a group: got %d %s, want purged 1", code, body)
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{fmt.Errorf("x: %w", admin.ErrNotFound), 404},
		{fmt.Errorf("x: %w", backend.ErrNotFound), 404},
		{fmt.Errorf("x: %w", faults.ErrUnknownFlag), 404},
		{fmt.Errorf("x: %w", faults.ErrInvalidValue), 400},
		{admin.BadField("sku", "unknown"), 400},
		{fmt.Errorf("x: %w", admin.ErrConflict), 409},
		{admin.IdempotencyKeyReused("was sent before with another restock"), 422},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), 503},
		{&admin.Problem{Status: 418}, 418},
		{echo.NewHTTPError(405), 405},
		{errors.New("anything else"), 500},
	}
	for _, tc := range tests {
		if got := admin.StatusOf(tc.err); got != tc.want {
			t.Errorf("StatusOf(%v): got %d, want %d", tc.err, got, tc.want)
		}
	}
}

// serving runs srv on its loopback listener until stop, which ends Serve's
// context and returns what Serve returned (failing the test if Serve does
// not return within 15 s).
func serving(t *testing.T, srv *admin.Server) (addr string, stop func() error) {
	t.Helper()
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	return ln.Addr().String(), func() error {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("Serve did not return within 15s of its context ending")
			return nil
		}
	}
}

// A page on another site cannot make a browser change a fault flag: the
// server refuses writes that carry another origin (a "simple" text/plain
// POST needs no CORS preflight), while curl, which sends no Origin, goes
// through.
func TestServeRefusesWritesFromOtherOrigins(t *testing.T) {
	f := newFixture(t, nil)
	addr, stop := serving(t, f.srv)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	put := func(origin string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/faults/payment_decline_rate", strings.NewReader(`{"value":"1"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		if origin != "" {
			req.Header.Set("Origin", origin)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	if resp := put("http://evil.example"); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != admin.ProblemContentType {
		t.Errorf("cross-origin POST: got %d %q, want 403 %s", resp.StatusCode, resp.Header.Get("Content-Type"), admin.ProblemContentType)
	}
	if got := f.reg.Rate("payment_decline_rate"); got != 0 {
		t.Fatalf("decline rate after the refused request: got %v, want 0", got)
	}
	if resp := put(""); resp.StatusCode != http.StatusOK {
		t.Errorf("POST without an Origin (curl): got %d, want 200", resp.StatusCode)
	}

	// Profiles are reads that cost the service while they run: another
	// site's page (an <img> pointing at one) is refused them too.
	for _, path := range []string{"/debug/pprof/trace?seconds=1", "/debug/pprof/profile?seconds=1", "/debug/pprof/heap?gc=1"} {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site GET %s: got %d, want 403", path, resp.StatusCode)
		}
	}
}

// A client that stalls in the middle of its request holds up the stop for
// ShutdownTimeout, then its connection is closed and Serve returns nil.
func TestServeStopsDespiteAStalledClient(t *testing.T) {
	srv, err := admin.New(admin.Config{Service: "x", ShutdownTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := serving(t, srv)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "PUT /faults/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the request is in progress, its body stalled
	if err := stop(); err != nil {
		t.Errorf("Serve with a stalled client: got %v, want nil", err)
	}
}

// A handler still at work after ShutdownTimeout fails the stop: it goes
// on while the service closes what it uses.
func TestServeReportsAHandlerStillRunningAtTheStop(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	srv, err := admin.New(admin.Config{Service: "x", ShutdownTimeout: 200 * time.Millisecond,
		Routes: func(e *echo.Echo) {
			e.GET("/stuck", func(c echo.Context) error {
				close(started)
				<-release
				return c.NoContent(http.StatusNoContent)
			})
		}})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := serving(t, srv)
	got := make(chan struct{})
	go func() {
		defer close(got)
		if resp, err := http.Get("http://" + addr + "/stuck"); err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-started
	if err := stop(); err == nil || !strings.Contains(err.Error(), "1 requests still running") {
		t.Errorf("Serve with a handler at work: got %v, want an error saying 1 request is still running", err)
	}
	close(release)
	<-got
}

func TestRunListensAndStops(t *testing.T) {
	srv, err := admin.New(admin.Config{Service: "x"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ln.Addr().String(), "127.0.0.1:") {
		t.Errorf("default address: got %s, want loopback", ln.Addr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /healthz: got %d, want 200", resp.StatusCode)
	}
	// Probes and curl -I use HEAD: answered like GET, without a body.
	resp, err = http.Head("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "application/json") {
		t.Errorf("HEAD /healthz: got %d with Content-Type %q, want 200 with GET's application/json", resp.StatusCode, ct)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: got %v, want nil", err)
	}
	if _, err := admin.New(admin.Config{}); err == nil {
		t.Error("New without a service name: got nil error, want one")
	}
}

func TestBodyLimitWithoutContentLength(t *testing.T) {
	f := newFixture(t, nil)
	req := httptest.NewRequest(http.MethodPut, "/faults/payment_latency",
		strings.NewReader(`{"value":"`+strings.Repeat("x", 70<<10)+`"}`))
	req.ContentLength = -1 // chunked: the limit is found while reading
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || rec.Header().Get("Content-Type") != admin.ProblemContentType {
		t.Errorf("got %d %s, want 413 problem+json", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// A body is one JSON object and nothing else: trailing data, even a stray
// ']' or '}' (which json.Decoder.More does not see), is refused with 400,
// and the flag keeps its value.
func TestBodyRefusesTrailingData(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		method, path, body string
		want               int
	}{
		{"PUT", "/faults/payment_decline_rate", `{"value":"0.2"}]garbage`, 400},
		{"PUT", "/faults/payment_decline_rate", `{"value":"0.2"}]`, 400},
		{"PUT", "/faults/payment_decline_rate", `{"value":"0.2"}}`, 400},
		{"PUT", "/faults/payment_decline_rate", `{"value":"0.2"}]]]`, 400},
		{"PUT", "/faults/payment_decline_rate", `{"value":"0.2"} {"value":"0.3"}`, 400},
		{"PUT", "/faults/payment_decline_rate", `{"value":"0.2"}garbage`, 400},
		{"POST", "/dlq/replay", `{"topic":"payment.commands"}]`, 400},
		{"PUT", "/faults/payment_decline_rate", "{\"value\":\"0.2\"}\n", 200}, // whitespace is no data
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path+" "+tc.body, func(t *testing.T) {
			if err := f.reg.Reset(faults.PaymentDeclineRate); err != nil {
				t.Fatal(err)
			}
			code, _, body := f.do(t, tc.method, tc.path, tc.body)
			if code != tc.want {
				t.Fatalf("status: got %d, want %d (body %s)", code, tc.want, body)
			}
			if tc.want == 400 {
				if !strings.Contains(string(body), "data after the JSON object") {
					t.Errorf("problem: got %s, want it to say \"data after the JSON object\"", body)
				}
				if got := f.reg.Rate(faults.PaymentDeclineRate); got != 0 {
					t.Errorf("payment_decline_rate after a refused body: got %v, want 0 (unchanged)", got)
				}
			}
		})
	}
}

// {"value": null} is refused like a missing value, instead of setting the
// flag to the zero of its type.
func TestSetFaultRefusesNull(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.reg.Set(faults.PaymentLatency, "250ms"); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"value":null}`, `{"value": null }`, `{}`} {
		for _, name := range []string{faults.PaymentLatency, faults.PaymentDeclineRate, faults.CrashMidHandler} {
			code, _, raw := f.do(t, "PUT", "/faults/"+name, body)
			var p admin.Problem
			_ = json.Unmarshal(raw, &p)
			if code != 400 || p.Field != "value" || !strings.Contains(p.Detail, "required") {
				t.Errorf("PUT /faults/%s %s: got %d %s, want 400 on field value saying it is required", name, body, code, raw)
			}
		}
	}
	st, err := f.reg.Get(faults.PaymentLatency)
	if err != nil {
		t.Fatal(err)
	}
	if st.Value != "250ms" {
		t.Errorf("payment_latency after the refused bodies: got %q, want 250ms as set before", st.Value)
	}
}

// A purge or replay whose body names topic or group as null (a script's
// unset variable through jq) is refused, naming the field, as one sent
// empty is, instead of selecting every dead letter.
func TestSelectionRefusesNull(t *testing.T) {
	tests := []struct {
		method, path, body, wantField string
	}{
		{"DELETE", "/dlq", `{"topic":null}`, "topic"},
		{"DELETE", "/dlq", `{"group": null }`, "group"},
		{"DELETE", "/dlq", `{"topic":"payment.commands","group":null}`, "group"},
		{"DELETE", "/dlq", `{"topic":7}`, "topic"},
		{"POST", "/dlq/replay", `{"topic":null}`, "topic"},
		{"POST", "/dlq/replay", `{"group":null}`, "group"},
		{"POST", "/dlq/replay?group=payment", `{"topic":null}`, "topic"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path+" "+tc.body, func(t *testing.T) {
			f := newFixture(t, nil)
			putDeadLetter(t, f.b, "payment.commands", "payment", "m-1")
			putDeadLetter(t, f.b, "other.topic", "shipping", "m-2")
			code, _, raw := f.do(t, tc.method, tc.path, tc.body)
			var p admin.Problem
			_ = json.Unmarshal(raw, &p)
			if code != 400 || p.Field != tc.wantField {
				t.Errorf("got %d %s, want 400 naming %s", code, raw, tc.wantField)
			}
			dls, err := f.b.DeadLetters().List(context.Background(), backend.DeadLetterFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(dls), 2; got != want {
				t.Errorf("dead letters after the refused request: got %d, want %d (all kept)", got, want)
			}
		})
	}
}

// A valid value whose action fails (an OnChange function's error, such as
// a poison message not published) is a 500 whose detail stays in the log,
// not a 200, nor a 400 blaming the value.
func TestSetFaultReportsAFailedAction(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.reg.OnChange(faults.Poison, func(v string) error {
		if v == "true" {
			return errors.New("secret database detail")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	code, h, raw := f.do(t, "PUT", "/faults/poison", `{"value":true}`)
	var p admin.Problem
	_ = json.Unmarshal(raw, &p)
	if code != 500 || h.Get("Content-Type") != admin.ProblemContentType || p.Field != "" || strings.Contains(string(raw), "secret") {
		t.Errorf("PUT /faults/poison: got %d %s, want a 500 problem naming no field and hiding the error", code, raw)
	}
	if code, _, raw := f.do(t, "PUT", "/faults/poison", `{"value":false}`); code != 200 {
		t.Errorf("PUT /faults/poison false: got %d %s, want 200", code, raw)
	}
}

// Listening on every interface (in a container, its port published on the
// host's 127.0.0.1), the server still answers only to IP addresses,
// localhost and the names it is given: a page whose name was rebound to
// 127.0.0.1 cannot flip a flag or read dead letters, though its browser
// counts its requests as same-origin.
func TestServeRefusesRequestsToReboundNames(t *testing.T) {
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags("payment")})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Service: "payment", Addr: "0.0.0.0:0", AllowedHosts: []string{"payment"}, Faults: reg})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := serving(t, srv)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want int
	}{
		{"attacker.example:" + port, http.StatusMisdirectedRequest},
		{"127.0.0.1:" + port, http.StatusOK},
		{"localhost:" + port, http.StatusOK},
		{"payment:" + port, http.StatusOK}, // the console's name for it in Docker Compose
	}
	for _, tc := range tests {
		if err := reg.Reset(faults.PaymentDeclineRate); err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPut, "http://127.0.0.1:"+port+"/faults/payment_decline_rate", strings.NewReader(`{"value":"1"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = tc.host
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Origin", "http://"+tc.host)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("PUT with Host %s: got %d, want %d", tc.host, resp.StatusCode, tc.want)
		}
		wantRate := 1.0
		if tc.want != http.StatusOK {
			wantRate = 0
		}
		if got := reg.Rate(faults.PaymentDeclineRate); got != wantRate {
			t.Errorf("decline rate after PUT with Host %s: got %v, want %v", tc.host, got, wantRate)
		}
	}
	if _, err := admin.New(admin.Config{Service: "payment", AllowedHosts: []string{"payment:8082"}}); err == nil {
		t.Error("New with an allowed host with a port: got nil error, want one")
	}
}

// A flag's name in the path is percent-decoded, as inventory's SKU is: a
// client that escapes more than it must (payment%5Fdecline%5Frate) reaches
// the flag, not a 404 naming the escapes.
func TestFaultNameIsPercentDecoded(t *testing.T) {
	f := newFixture(t, nil)
	const path = "/faults/payment%5Fdecline%5Frate"
	tests := []struct {
		method, body, wantValue string
	}{
		{"PUT", `{"value":"0.5"}`, "0.5"},
		{"GET", "", "0.5"},
		{"POST", `{"value":"0.25"}`, "0.25"},
		{"DELETE", "", "0"},
	}
	for _, tc := range tests {
		code, _, body := f.do(t, tc.method, path, tc.body)
		var st faults.State
		if err := json.Unmarshal(body, &st); err != nil || code != 200 {
			t.Fatalf("%s %s: got %d %s, want 200 and the flag", tc.method, path, code, body)
		}
		if st.Name != faults.PaymentDeclineRate || st.Value != tc.wantValue {
			t.Errorf("%s %s: got %s = %q, want %s = %q", tc.method, path, st.Name, st.Value, faults.PaymentDeclineRate, tc.wantValue)
		}
		if got := f.reg.Rate(faults.PaymentDeclineRate); fmt.Sprint(got) != tc.wantValue {
			t.Errorf("%s %s: registry holds %v, want %s", tc.method, path, got, tc.wantValue)
		}
	}
	// An escaped name that is no flag is a 404 naming the name decoded.
	code, _, body := f.do(t, "GET", "/faults/n%6Fpe", "")
	if code != 404 || !strings.Contains(string(body), `unknown fault flag \"nope\"`) {
		t.Errorf("GET /faults/n%%6Fpe: got %d %s, want 404 naming \"nope\"", code, body)
	}
}

// A probe that finds the service not ready is answered 503, and that is
// all: no error record (during an outage, a probe a second would add an
// error a second to the log), while a failing route still logs one.
func TestANotReadyProbeIsNoErrorRecord(t *testing.T) {
	var logs logtest.Buffer
	srv, err := admin.New(admin.Config{
		Service: "payment",
		Ready:   func(context.Context) error { return errors.New("queue: connection refused") },
		Logger:  slog.New(slog.NewJSONHandler(&logs, nil)), // the services' default level, info
		Routes: func(e *echo.Echo) {
			e.GET("/boom", func(echo.Context) error { return errors.New("broken") })
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{http.MethodGet} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(method, "/readyz", nil))
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Content-Type") != admin.ProblemContentType {
			t.Errorf("%s /readyz when not ready: got %d %q, want 503 problem+json", method, rec.Code, rec.Header().Get("Content-Type"))
		}
		if method == http.MethodGet && !strings.Contains(rec.Body.String(), "connection refused") {
			t.Errorf("GET /readyz when not ready: got %s, want the cause", rec.Body.String())
		}
	}
	if got := logs.String(); got != "" {
		t.Errorf("not-ready probes logged\n%s\nwant nothing at info level", got)
	}
	srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/boom", nil))
	if !strings.Contains(logs.String(), "admin request failed") {
		t.Errorf("a failing route logged %q, want its error record", logs.String())
	}
}
