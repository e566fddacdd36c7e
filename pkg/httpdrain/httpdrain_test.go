package httpdrain_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/httpdrain"
)

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// stallUpload connects a client to srv that sends a request's header and
// part of its body, then stalls. The caller closes the connection before
// srv (whose Close waits for it).
func stallUpload(t *testing.T, srv *httptest.Server) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		_ = conn.Close()
		t.Fatal(err)
	}
	return conn
}

func TestBusyCountsHandlersAtWorkNotStalledUploads(t *testing.T) {
	var requests httpdrain.Tracker
	started, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(requests.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/work" {
			started <- struct{}{}
			<-release
			return
		}
		_, _ = io.ReadAll(r.Body)
	})))
	defer srv.Close()

	conn := stallUpload(t, srv)
	defer conn.Close()
	// Its handler runs, blocked reading the body: not busy.
	waitFor(t, "one handler running, none busy", func() bool { return requests.Running() == 1 && requests.Busy() == 0 })

	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Post(srv.URL+"/work", "application/json", strings.NewReader("{}"))
		if err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-started
	if got := requests.Busy(); got != 1 {
		t.Errorf("Busy with a handler at work beside the stalled upload: got %d, want 1", got)
	}
	close(release)
	<-done
	waitFor(t, "Busy back to 0", func() bool { return requests.Busy() == 0 })
}

// A shutdown whose context is cancelled rather than timed out (a second
// signal asking to hurry) still closes the connections left.
func TestShutdownByACancelledContextClosesTheConnectionsLeft(t *testing.T) {
	var requests httpdrain.Tracker
	srv := httptest.NewServer(requests.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
	})))
	defer srv.Close()
	conn := stallUpload(t, srv)
	defer conn.Close()
	waitFor(t, "the stalled upload's handler running", func() bool { return requests.Running() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stalled, err := requests.Shutdown(ctx, srv.Config)
	if !stalled || err != nil {
		t.Errorf("Shutdown with a cancelled context: got stalled %v, error %v; want stalled true, no error", stalled, err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read from the stalled connection after Shutdown: got %v, want it closed by the server", err)
	}
}
