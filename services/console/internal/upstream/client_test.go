package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newTestClient(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	return newTestClientTimeout(t, h, time.Second)
}

// newTestClientTimeout is newTestClient with a timeout of the test's
// choosing: a test that moves megabytes under -race on a busy machine
// must not fail by the clock.
func newTestClientTimeout(t *testing.T, h http.HandlerFunc, timeout time.Duration) *Client {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	c, err := NewClient("payment", s.URL+"/", nil, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestErrorsSayWhatWentWrong(t *testing.T) {
	t.Run("refused connection is down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c, err := NewClient("payment", "http://"+addr, nil, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewAdmin(c).Faults(t.Context())
		var d *DownError
		if !errors.As(err, &d) || !IsDown(err) || d.Service != "payment" || d.URL != "http://"+addr {
			t.Fatalf("got %v, want a DownError of payment at %s", err, addr)
		}
		if OutcomeUnknown(err) {
			t.Errorf("OutcomeUnknown: got true for a request never sent, want false")
		}
	})
	t.Run("no answer in time after sending is an unknown outcome", func(t *testing.T) {
		release := make(chan struct{})
		c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		defer close(release)
		c.timeout = 50 * time.Millisecond
		err := NewAdmin(c).Health(t.Context())
		if !IsDown(err) || !OutcomeUnknown(err) || err.Error() != "payment got the request but gave no answer ("+c.BaseURL()+"): no answer in time" {
			t.Fatalf("got %v, want no answer in time, outcome unknown", err)
		}
	})
	t.Run("the caller giving up is not the service's fault", func(t *testing.T) {
		c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := NewAdmin(c).Health(ctx)
		if !errors.Is(err, context.Canceled) || IsDown(err) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("a problem keeps its fields", func(t *testing.T) {
		c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"type":"urn:x","title":"Invalid request","status":422,"detail":"bad","field":"customer_id",
				"errors":[{"field":"customer_id","detail":"is required"},{"field":"items[0].quantity","detail":"must be positive"}]}`)
		})
		_, err := NewOrders(c).Place(t.Context(), PlaceOrder{}, "")
		p, ok := AsProblem(err)
		if !ok || p.Status != 422 || p.Service != "payment" {
			t.Fatalf("got %v, want a 422 problem", err)
		}
		f := p.Fields()
		if f["customer_id"] != "is required" || f["items[0].quantity"] != "must be positive" || len(f) != 2 {
			t.Errorf("fields: got %v", f)
		}
		if err.Error() != "payment answered 422: bad" {
			t.Errorf("message: got %q", err.Error())
		}
	})
	t.Run("an error without a body", func(t *testing.T) {
		c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "upstream gone\n")
		})
		err := NewAdmin(c).Health(t.Context())
		p, ok := AsProblem(err)
		if !ok || p.Status != 502 || p.Detail != "upstream gone" || IsDown(err) {
			t.Fatalf("got %#v, want a 502 problem with the text", err)
		}
	})
	t.Run("an answer that is not the expected JSON", func(t *testing.T) {
		c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>") })
		_, err := NewAdmin(c).Stock(t.Context())
		var a *AnswerError
		if !errors.As(err, &a) || a.Status != http.StatusOK ||
			err.Error() != "payment answered 200 to GET /stock, but the answer is not the expected JSON: invalid character '<' looking for beginning of value" {
			t.Fatalf("got %v, want an answer error saying the answer is not the expected JSON", err)
		}
	})
}

// A success the console cannot read is no refusal: the service may have
// done what it was asked, so the outcome of a change is unknown.
func TestUnreadableSuccessIsAnUnknownOutcome(t *testing.T) {
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter)
	}{
		{"text", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "ok")
		}},
		{"too large", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"sku":"`+strings.Repeat("x", maxResponse)+`"}`)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A minute, not newTestClient's second: "too large" moves
			// 4 MiB, which under -race on a busy machine can take longer
			// than a second, and a timeout would be a different failure.
			c := newTestClientTimeout(t, func(w http.ResponseWriter, r *http.Request) { tc.answer(w) }, time.Minute)
			_, err := NewAdmin(c).Restock(t.Context(), "SKU-1", 5, "key-1")
			if !OutcomeUnknown(err) {
				t.Errorf("OutcomeUnknown(%v): got false, want true", err)
			}
			if p, ok := AsProblem(err); ok {
				t.Errorf("AsProblem: got %v, want no problem (the service did not refuse)", p)
			}
			if IsDown(err) {
				t.Errorf("IsDown(%v): got true, want false (the service answered)", err)
			}
		})
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	elsewhere := make(chan string, 1)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere <- r.Method + " " + r.URL.Path
	}))
	t.Cleanup(other.Close)
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect} {
		c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/steal", status)
		})
		_, err := NewAdmin(c).SetFault(t.Context(), "poison", "true")
		// A bad gateway: the console must not relay a 3xx (without its
		// Location) to the browser.
		if p, ok := AsProblem(err); !ok || p.Status != http.StatusBadGateway || p.Title != "Unexpected answer" {
			t.Errorf("redirect %d: got %v, want an unexpected-answer problem (502)", status, err)
		}
	}
	select {
	case got := <-elsewhere:
		t.Errorf("the redirect was followed: the other host got %s, want nothing", got)
	default:
	}
}

func TestPasswordsAreMasked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := NewClient("payment", "http://admin:s3cret@"+addr, nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := "http://admin:xxxxx@" + addr
	if got := c.BaseURL(); got != want {
		t.Errorf("BaseURL: got %q, want %q", got, want)
	}
	err = NewAdmin(c).Health(t.Context())
	var d *DownError
	if !errors.As(err, &d) || d.URL != want || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("got %v, want a DownError naming %s", err, want)
	}
}

func TestRequests(t *testing.T) {
	type seen struct {
		method, path, query, key, ctype string
		body                            map[string]any
	}
	var got seen
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		got = seen{method: r.Method, path: r.URL.EscapedPath(), query: r.URL.RawQuery, key: r.Header.Get("Idempotency-Key"),
			ctype: r.Header.Get("Content-Type")}
		got.body = nil
		_ = json.NewDecoder(r.Body).Decode(&got.body)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/faults", "/stock", "/gateway", "/carrier":
			_, _ = io.WriteString(w, `[]`)
		case "/orders/a b/events":
			_, _ = io.WriteString(w, `{"order_id":"a b","events":[{"version":1,"type":"OrderPlaced","data":{}}]}`)
		default:
			_, _ = io.WriteString(w, `{}`)
		}
	})
	o, a := NewOrders(c), NewAdmin(c)
	ctx := t.Context()
	steps := []struct {
		name string
		call func() error
		want seen
	}{
		{"place", func() error {
			_, err := o.Place(ctx, PlaceOrder{CustomerID: "c", Items: []Line{{SKU: "S", Quantity: 2}}}, "k-1")
			return err
		}, seen{method: "POST", path: "/orders", key: "k-1", ctype: "application/json",
			body: map[string]any{"customer_id": "c", "items": []any{map[string]any{"sku": "S", "quantity": float64(2)}}}}},
		{"get", func() error { _, err := o.Get(ctx, "a/b"); return err }, seen{method: "GET", path: "/orders/a%2Fb"}},
		{"events", func() error {
			evs, err := o.Events(ctx, "a b")
			if err == nil && (len(evs) != 1 || evs[0].Type != "OrderPlaced") {
				return errors.New("events not decoded")
			}
			return err
		}, seen{method: "GET", path: "/orders/a%20b/events"}},
		{"list", func() error { _, err := o.List(ctx, "COMPLETED", 25, "cur"); return err },
			seen{method: "GET", path: "/orders", query: "cursor=cur&limit=25&status=COMPLETED"}},
		{"list all", func() error { _, err := o.List(ctx, "", 0, ""); return err }, seen{method: "GET", path: "/orders"}},
		{"counts", func() error { _, err := o.Counts(ctx); return err }, seen{method: "GET", path: "/orders/counts"}},
		{"cancel", func() error { _, err := o.Cancel(ctx, "o-1", "why"); return err },
			seen{method: "POST", path: "/orders/o-1/cancel", ctype: "application/json", body: map[string]any{"reason": "why"}}},
		{"faults", func() error { _, err := a.Faults(ctx); return err }, seen{method: "GET", path: "/faults"}},
		{"set fault", func() error { _, err := a.SetFault(ctx, "poison", "true"); return err },
			seen{method: "PUT", path: "/faults/poison", ctype: "application/json", body: map[string]any{"value": "true"}}},
		{"reset fault", func() error { _, err := a.ResetFault(ctx, "poison"); return err }, seen{method: "DELETE", path: "/faults/poison"}},
		{"stock", func() error { _, err := a.Stock(ctx); return err }, seen{method: "GET", path: "/stock"}},
		{"restock", func() error { _, err := a.Restock(ctx, "SKU-1", 4, "k-9"); return err },
			seen{method: "POST", path: "/stock/SKU-1/restock", key: "k-9", ctype: "application/json", body: map[string]any{"quantity": float64(4)}}},
		{"health", func() error { return a.Health(ctx) }, seen{method: "GET", path: "/healthz"}},
		{"gateway", func() error { _, err := a.Gateway(ctx, "o 1&x"); return err }, seen{method: "GET", path: "/gateway", query: "order_id=o+1%26x"}},
		{"carrier", func() error { _, err := a.Carrier(ctx, "o-1"); return err }, seen{method: "GET", path: "/carrier", query: "order_id=o-1"}},
	}
	for _, s := range steps {
		if err := s.call(); err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		gb, _ := json.Marshal(got.body)
		wb, _ := json.Marshal(s.want.body)
		if got.method != s.want.method || got.path != s.want.path || got.query != s.want.query || got.key != s.want.key ||
			got.ctype != s.want.ctype || string(gb) != string(wb) {
			t.Errorf("%s: got %+v %s, want %+v %s", s.name, got, gb, s.want, wb)
		}
	}
}

func TestParseBaseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"https://console.example/api/", "https://console.example/api", true},
		{"127.0.0.1:8080", "", false},
		{"ftp://x", "", false},
		{"http://", "", false},
		{"http://x/?a=1", "", false},
		{"http://x/#f", "", false},
	} {
		u, err := ParseBaseURL(tc.in)
		if (err == nil) != tc.ok || (err == nil && u.String() != tc.want) {
			t.Errorf("ParseBaseURL(%q): got %v %v, want %q ok=%v", tc.in, u, err, tc.want, tc.ok)
		}
	}
}

func TestStatuses(t *testing.T) {
	for _, s := range Statuses() {
		if IsTerminal(s) && IsCancellable(s) {
			t.Errorf("%s is both terminal and cancellable", s)
		}
	}
	if IsCancellable(StatusCancelling) || !IsCancellable(StatusPaymentCharged) || !IsTerminal(StatusRejected) {
		t.Error("cancellable or terminal statuses are wrong")
	}
	if (Fault{Value: "1", Default: "0"}).Active() != true || (Fault{Value: "0", Default: "0"}).Active() {
		t.Error("Fault.Active is wrong")
	}
}

func TestProviderRecords(t *testing.T) {
	// The answers as payment's GET /gateway and shipping's GET /carrier
	// write them (omitempty fields left out).
	answers := map[string]string{
		"/gateway?order_id=o-1": `[{"order_id":"o-1","outcome":"ACCEPTED","reference":"pay_01","amount_cents":1500,"cancelled":true,` +
			`"requests":2,"cancels":1,"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:06Z"}]`,
		"/carrier?order_id=o-1": `[{"order_id":"o-1","outcome":"VOIDED","reason":"shipment of this order was cancelled","cancelled":false,` +
			`"requests":1,"cancels":1,"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:06Z"}]`,
		"/gateway?order_id=o-2": `[]`,
		"/carrier?order_id=o-2": `[{"order_id":"someone-else","outcome":"ACCEPTED","requests":1}]`,
	}
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		a, ok := answers[r.URL.Path+"?"+r.URL.RawQuery]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, a)
	})
	a := NewAdmin(c)
	g, err := a.Gateway(t.Context(), "o-1")
	if err != nil || g == nil || g.Outcome != OutcomeAccepted || g.Reference != "pay_01" || g.AmountCents != 1500 ||
		!g.Cancelled || g.Requests != 2 || g.Cancels != 1 || g.CreatedAt.IsZero() {
		t.Errorf("gateway o-1: got %+v, %v", g, err)
	}
	s, err := a.Carrier(t.Context(), "o-1")
	if err != nil || s == nil || s.Outcome != OutcomeVoided || s.Reason == "" || s.AmountCents != 0 || s.Requests != 1 {
		t.Errorf("carrier o-1: got %+v, %v", s, err)
	}
	if g, err := a.Gateway(t.Context(), "o-2"); g != nil || err != nil {
		t.Errorf("gateway o-2: got %+v, %v, want no record", g, err)
	}
	if s, err := a.Carrier(t.Context(), "o-2"); s != nil || err != nil {
		t.Errorf("carrier o-2 (another order's record): got %+v, %v, want no record", s, err)
	}
	if _, err := a.Gateway(t.Context(), "o-3"); err == nil {
		t.Error("gateway o-3: got no error from a 404")
	} else if p, ok := AsProblem(err); !ok || p.Status != http.StatusNotFound {
		t.Errorf("gateway o-3: got %v, want a 404 Problem", err)
	}
}

func TestFaultActive(t *testing.T) {
	tests := []struct {
		typ, value, def string
		want            bool
	}{
		{FaultRate, "0", "0", false},
		{FaultRate, "-0", "0", false},
		{FaultRate, "0.0", "0", false},
		{FaultRate, "0.5", "0", true},
		{FaultDuration, "0s", "0s", false},
		{FaultDuration, "2s", "0s", true},
		{FaultString, "", "", false},
	}
	for _, tc := range tests {
		f := Fault{Type: tc.typ, Value: tc.value, Default: tc.def}
		if got := f.Active(); got != tc.want {
			t.Errorf("Active of %s %q (default %q): got %v, want %v", tc.typ, tc.value, tc.def, got, tc.want)
		}
	}
}

func TestAnswerTooLarge(t *testing.T) {
	c := newTestClientTimeout(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `[{"sku":"`+strings.Repeat("x", maxResponse)+`"}]`)
	}, time.Minute)
	_, err := NewAdmin(c).Stock(t.Context())
	var a *AnswerError
	if !errors.As(err, &a) || err.Error() != "payment answered 200 to GET /stock, but the answer is larger than the 4 MiB the console reads" {
		t.Fatalf("got %v, want an answer error saying the answer is too large", err)
	}
}
