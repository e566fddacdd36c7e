package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: no
// probe's request may outlive its deadline.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusOK)
		case "/slow":
			time.Sleep(200 * time.Millisecond)
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		args   []string
		wantOK bool
	}{
		{"2xx", []string{srv.URL + "/ok"}, true},
		{"503", []string{srv.URL + "/readyz"}, false},
		{"timeout", []string{"--timeout", "50ms", srv.URL + "/slow"}, false},
		{"refused", []string{"http://127.0.0.1:1/healthz"}, false},
		{"no url", nil, false},
		{"zero timeout", []string{"--timeout", "0s", srv.URL + "/ok"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(tc.args, &stderr)
			if got := err == nil; got != tc.wantOK {
				t.Errorf("run(%q) = %v, want ok=%v", tc.args, err, tc.wantOK)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	var stderr bytes.Buffer
	if got := exitCode(run([]string{"--help"}, &stderr)); got != 0 {
		t.Errorf("--help: got exit %d, want 0", got)
	}
	if got := exitCode(run(nil, &stderr)); got != 1 {
		t.Errorf("no URL: got exit %d, want 1", got)
	}
}
