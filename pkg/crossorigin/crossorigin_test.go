package crossorigin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/pkg/crossorigin"
)

func TestHandlerRefusesOnlyCrossOriginBrowserWrites(t *testing.T) {
	reached := false
	h := crossorigin.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = true
		w.WriteHeader(http.StatusNoContent)
	}))
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		want    int
	}{
		{"curl: no browser headers", http.MethodPost, nil, http.StatusNoContent},
		{"same-origin page", http.MethodPost, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8080"}, http.StatusNoContent},
		{"typed in the address bar", http.MethodPost, map[string]string{"Sec-Fetch-Site": "none"}, http.StatusNoContent},
		{"another site's page", http.MethodPost, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, http.StatusForbidden},
		{"another site's page, older browser", http.MethodPut, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"another port of localhost", http.MethodDelete, map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:9999"}, http.StatusForbidden},
		{"a cross-site read", http.MethodGet, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached = false
			req := httptest.NewRequest(tt.method, "http://127.0.0.1:8080/faults/payment_decline_rate", strings.NewReader(`{"value":"1"}`))
			req.Header.Set("Content-Type", "text/plain")
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status: got %d, want %d", rec.Code, tt.want)
			}
			if tt.want != http.StatusForbidden {
				return
			}
			if reached {
				t.Error("the handler ran for a refused request")
			}
			var p struct {
				Type   string `json:"type"`
				Status int    `json:"status"`
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type: got %q, want application/problem+json", ct)
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Type != crossorigin.ProblemType || p.Status != http.StatusForbidden {
				t.Errorf("body: got %s (%v), want a problem of type %s, status 403", rec.Body, err, crossorigin.ProblemType)
			}
		})
	}
}

// ReadsOnlyFromOwnOrigin refuses reads too, of every method, when a
// browser sends them from another origin: a profile costs the service
// whoever reads it.
func TestReadsOnlyFromOwnOriginRefusesOtherOrigins(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"curl: no browser headers", nil, http.StatusNoContent},
		{"same-origin page", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusNoContent},
		{"typed in the address bar", map[string]string{"Sec-Fetch-Site": "none"}, http.StatusNoContent},
		{"another site's <img>", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"another port of localhost", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"older browser, another origin", map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"older browser, own origin", map[string]string{"Origin": "http://127.0.0.1:8084"}, http.StatusNoContent},
		{"older browser, an origin that does not parse", map[string]string{"Origin": "http://[::1"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached := false
			h := crossorigin.ReadsOnlyFromOwnOrigin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached = true
				w.WriteHeader(http.StatusNoContent)
			}))
			req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8084/debug/pprof/trace?seconds=5", nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status: got %d, want %d", rec.Code, tt.want)
			}
			if reached != (tt.want != http.StatusForbidden) {
				t.Errorf("handler reached: got %v, want %v", reached, !reached)
			}
			if tt.want == http.StatusForbidden && rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("content type: got %q, want application/problem+json", rec.Header().Get("Content-Type"))
			}
		})
	}
}

// A server answers only to IP addresses, localhost, its machine's host
// name and the names it is given, wherever it listens: a page whose name
// was rebound to the server's address sends its own name in Host, and its
// browser counts its requests as same-origin, which Handler lets through.
// In Docker Compose a service listens on 0.0.0.0 with its port published
// on the host's 127.0.0.1, as reachable by a rebound name as loopback.
func TestHostRefusesNamesItWasNotGiven(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	reached := false
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = true
		w.WriteHeader(http.StatusNoContent)
	})
	// The admin API's and the order API's stack.
	h := crossorigin.Host([]string{"payment", "Order.Example."}, crossorigin.Handler(ok))
	tests := []struct {
		host string
		want int
	}{
		{"127.0.0.1:8082", http.StatusNoContent},
		{"[::1]:8082", http.StatusNoContent},
		{"172.18.0.5:8082", http.StatusNoContent}, // a container's address
		{"localhost:8082", http.StatusNoContent},
		{"LOCALHOST", http.StatusNoContent},
		{"app.localhost:8082", http.StatusNoContent},
		{"payment:8082", http.StatusNoContent}, // given: the console calls it so
		{"PAYMENT", http.StatusNoContent},
		{"order.example:8080", http.StatusNoContent},
		{"order.example.:8080", http.StatusNoContent},
		{hostname + ":8082", http.StatusNoContent},
		{"", http.StatusNoContent}, // HTTP/1.0
		{"attacker.example:8082", http.StatusMisdirectedRequest},
		{"attacker.example", http.StatusMisdirectedRequest},
		{"localhost.attacker.example", http.StatusMisdirectedRequest},
		{"payment.attacker.example:8082", http.StatusMisdirectedRequest},
		{"shipping:8083", http.StatusMisdirectedRequest}, // not given
	}
	for _, tc := range tests {
		reached = false
		req := httptest.NewRequest(http.MethodPut, "http://x/faults/poison", strings.NewReader(`{"value":true}`))
		req.Host = tc.host
		// What a browser sends from a page whose name was rebound: to
		// it, the server is the page's own origin.
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Origin", "http://"+tc.host)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("Host %q: got %d, want %d", tc.host, rec.Code, tc.want)
		}
		if tc.want != http.StatusMisdirectedRequest {
			continue
		}
		if reached {
			t.Errorf("Host %q: the handler ran for a refused request", tc.host)
		}
		var p struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Header().Get("Content-Type") != "application/problem+json" ||
			p.Type != crossorigin.HostProblemType || p.Status != http.StatusMisdirectedRequest {
			t.Errorf("Host %q: got %q %s, want a problem of type %s, status 421", tc.host, rec.Header().Get("Content-Type"), rec.Body, crossorigin.HostProblemType)
		}
	}
}

func TestParseHosts(t *testing.T) {
	tests := []struct {
		list    string
		want    []string
		wantErr string
	}{
		{"", nil, ""},
		{" order , Inventory.Example., ,::1,[fe80::1]", []string{"order", "inventory.example", "::1", "fe80::1"}, ""},
		{"order:8080", nil, `host "order:8080"`},
		{"http://order", nil, `host "http://order"`},
		{"order/x", nil, `host "order/x"`},
	}
	for _, tc := range tests {
		got, err := crossorigin.ParseHosts(tc.list)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseHosts(%q): got %v, %v; want an error naming %s", tc.list, got, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || !slices.Equal(got, tc.want)):
			t.Errorf("ParseHosts(%q): got %q, %v; want %q", tc.list, got, err, tc.want)
		}
	}
}

// A HostSet holds only the names it is given (no IP address or localhost
// besides them, unlike Host), compared as Host compares them.
func TestHostSet(t *testing.T) {
	if _, err := crossorigin.NewHostSet([]string{"console", "[console]"}); err == nil {
		t.Error(`NewHostSet with "[console]": got no error, want one`)
	}
	s, err := crossorigin.NewHostSet([]string{"Console.Example", "[::1]", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"console.example":       true,
		"CONSOLE.EXAMPLE:8090":  true,
		"console.example.:8090": true,
		"[::1]:8090":            true,
		"127.0.0.1":             true,
		"localhost:8090":        false,
		"127.0.0.2:8090":        false,
		"console.example.evil":  false,
		"":                      false,
	} {
		if got := s.Contains(host); got != want {
			t.Errorf("Contains(%q): got %v, want %v", host, got, want)
		}
	}
}

// HandlerDeny and HostDeny hand the requests they refuse, with the
// refusal, to deny instead of writing their own problem; the handler is
// not reached. A nil deny writes the problem Handler and Host write.
func TestDenyAnswersTheRefusedRequests(t *testing.T) {
	reached := false
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = true
		w.WriteHeader(http.StatusNoContent)
	})
	var got *crossorigin.Refusal
	deny := func(w http.ResponseWriter, r *http.Request, refusal *crossorigin.Refusal) {
		got = refusal
		w.Header().Set("X-Denied", r.URL.Path)
		w.WriteHeader(refusal.Status)
	}
	tests := []struct {
		name   string
		h      http.Handler
		host   string
		origin string
		status int
		typ    string
	}{
		{"cross-origin write", crossorigin.HandlerDeny(ok, deny), "127.0.0.1:8080", "http://evil.example", http.StatusForbidden, crossorigin.ProblemType},
		{"host not given", crossorigin.HostDeny([]string{"order"}, ok, deny), "evil.example:8080", "", http.StatusMisdirectedRequest, crossorigin.HostProblemType},
		{"host given", crossorigin.HostDeny([]string{"order"}, ok, deny), "order:8080", "", http.StatusNoContent, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reached, got = false, nil
			req := httptest.NewRequest(http.MethodPost, "http://x/orders", strings.NewReader(`{}`))
			req.Host = tc.host
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
				req.Header.Set("Sec-Fetch-Site", "cross-site")
			}
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status: got %d, want %d", rec.Code, tc.status)
			}
			if tc.typ == "" {
				if got != nil || !reached {
					t.Errorf("got refusal %+v, reached %v; want the handler to serve it", got, reached)
				}
				return
			}
			if reached {
				t.Error("the handler ran for a refused request")
			}
			if got == nil || got.Status != tc.status || got.Type != tc.typ || got.Title == "" || got.Detail == "" || got.Error() != got.Detail {
				t.Errorf("refusal: got %+v, want status %d, type %s, a title and a detail", got, tc.status, tc.typ)
			}
			if rec.Header().Get("X-Denied") != "/orders" {
				t.Errorf("deny was not the one to answer: headers %v", rec.Header())
			}
		})
	}
	// nil: the default problem.
	req := httptest.NewRequest(http.MethodPost, "http://x/orders", nil)
	req.Host = "evil.example"
	rec := httptest.NewRecorder()
	crossorigin.HostDeny(nil, ok, nil).ServeHTTP(rec, req)
	if rec.Code != http.StatusMisdirectedRequest || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("nil deny: got %d %q, want 421 application/problem+json", rec.Code, rec.Header().Get("Content-Type"))
	}
}
