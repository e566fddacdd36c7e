package crossorigin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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

// A server on loopback answers only to IP addresses and localhost: a page
// whose name was rebound to 127.0.0.1 sends its own name in Host. Other
// servers (all interfaces, in a container) are not checked.
func TestHostRefusesNamesOnLoopbackServers(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	tests := []struct {
		listen, host string
		want         int
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", http.StatusNoContent},
		{"127.0.0.1:8080", "localhost:8080", http.StatusNoContent},
		{"127.0.0.1:8080", "LOCALHOST", http.StatusNoContent},
		{"127.0.0.1:8080", "app.localhost:8080", http.StatusNoContent},
		{"127.0.0.1:8080", "[::1]:8080", http.StatusNoContent},
		{"127.0.0.1:8080", "evil.example:8080", http.StatusMisdirectedRequest},
		{"127.0.0.1:8080", "localhost.evil.example", http.StatusMisdirectedRequest},
		{"localhost:8080", "evil.example", http.StatusMisdirectedRequest},
		{"[::1]:8080", "evil.example", http.StatusMisdirectedRequest},
		{":8080", "order:8080", http.StatusNoContent},
		{"0.0.0.0:8080", "evil.example", http.StatusNoContent},
	}
	for _, tc := range tests {
		req := httptest.NewRequest(http.MethodPut, "http://x/faults/poison", nil)
		req.Host = tc.host
		rec := httptest.NewRecorder()
		crossorigin.Host(tc.listen, ok).ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("listening on %s, Host %q: got %d, want %d", tc.listen, tc.host, rec.Code, tc.want)
		}
		if tc.want == http.StatusMisdirectedRequest && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("listening on %s, Host %q: content type %q, want a problem", tc.listen, tc.host, rec.Header().Get("Content-Type"))
		}
	}
}
