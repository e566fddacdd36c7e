package servicehost_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// failingWrites is a queue backend whose WriteHealth reports err.
type failingWrites struct {
	backend.Backend
	err error
}

func (f failingWrites) WriteHealth() error { return f.err }

// dbWrites is a service database whose WriteHealth reports err.
type dbWrites struct{ err error }

func (d dbWrites) WriteHealth() error { return d.err }

// Ready fails while the queue or the service's database says its writes
// fail, although reads (the topic list) and the database's ping answer.
func TestReadyReportsFailingWrites(t *testing.T) {
	q, r := runningRouter(t, filepath.Join(t.TempDir(), "queue.db"))
	ping := func(context.Context) error { return nil }
	full := errors.New("writes failing since 12:00:00: database or disk is full")

	tests := []struct {
		name string
		db   servicehost.WriteHealthReporter
		b    backend.Backend
		want string // "" for ready
	}{
		{"the SQLite queue, writing", nil, q.Backend(), ""},
		{"queue writes that succeed", nil, failingWrites{q.Backend(), nil}, ""},
		{"queue writes failing", nil, failingWrites{q.Backend(), full}, "queue: writes failing since 12:00:00: database or disk is full"},
		{"database writes that succeed", dbWrites{}, q.Backend(), ""},
		{"database writes failing", dbWrites{fmt.Errorf("database: %w", full)}, q.Backend(), "database: writes failing since 12:00:00: database or disk is full"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := servicehost.Ready(t.Context(), r, ping, tc.db, tc.b)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want ready", err)
			case tc.want != "" && (!errors.Is(err, admin.ErrUnavailable) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want admin.ErrUnavailable saying %q", err, tc.want)
			}
		})
	}
}

// A queue file replaced under the running service (cp && mv) makes Ready
// fail: the process would go on with the old file, which processes
// started since do not see.
func TestReadyReportsAReplacedQueueFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q, r := runningRouter(t, path)
	ping := func(context.Context) error { return nil }
	if err := servicehost.Ready(t.Context(), r, ping, nil, q.Backend()); err != nil {
		t.Fatalf("before: got %v, want ready", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".backup", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".backup", path); err != nil {
		t.Fatal(err)
	}
	// Ready only once the queue's file check (every 10ms) has flagged the
	// replacement: before, Ready's topic list would read through a new
	// connection to the new file, whose -shm and -wal are still the old
	// file's, mapped by the connections open on it (in one process, SQLite's
	// locks cannot tell, and such a read has crashed with SIGBUS).
	h, ok := q.Backend().(servicehost.WriteHealthReporter)
	if !ok {
		t.Fatalf("the SQLite queue backend %T reports no write health", q.Backend())
	}
	deadline := time.Now().Add(30 * time.Second)
	for h.WriteHealth() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the queue did not flag its replaced file within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	err = servicehost.Ready(t.Context(), r, ping, nil, q.Backend())
	if !errors.Is(err, admin.ErrUnavailable) || !strings.Contains(err.Error(), "another file") {
		t.Fatalf("after the file was replaced: got %v, want admin.ErrUnavailable saying the path names another file", err)
	}
}

// runningRouter opens a SQLite queue at path (checking its file every
// 10ms) and runs a router on it until the test ends.
func runningRouter(t *testing.T, path string) (*queue.Queue, *queue.Router) {
	t.Helper()
	q, err := queue.Open(t.Context(), queue.Config{URL: "sqlite://" + path, SQLite: sqlite.Config{CheckpointInterval: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	r.Handle("h", "jobs", func(*message.Message) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-r.Running():
	case <-time.After(30 * time.Second):
		t.Fatal("router not running after 30s")
	}
	return q, r
}

// A poison message that could not be published is an error of PUT
// /faults/poison (a 5xx problem), not a 200 with the flag back at false;
// the flag is switched off either way.
func TestPoisonFaultReportsAFailedEmit(t *testing.T) {
	tests := []struct {
		name       string
		emitErr    error
		wantStatus int
		wantDetail string // "" when the detail must not show
	}{
		{"published", nil, http.StatusOK, ""},
		{"database failing", errors.New("disk I/O error"), http.StatusInternalServerError, ""},
		{"service stopped", fmt.Errorf("%w: payment service stopped", admin.ErrUnavailable), http.StatusServiceUnavailable, "payment service stopped"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags("payment")})
			if err != nil {
				t.Fatal(err)
			}
			emitted := 0
			poison := servicehost.PoisonFault(reg, slog.New(slog.DiscardHandler), "payment.events", func(context.Context) (string, error) {
				emitted++
				return "m-1", tc.emitErr
			})
			if err := reg.OnChange(faults.Poison, poison); err != nil {
				t.Fatal(err)
			}
			srv, err := admin.New(admin.Config{Service: "payment", Faults: reg})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/faults/poison", strings.NewReader(`{"value":true}`)))
			if rec.Code != tc.wantStatus {
				t.Errorf("PUT /faults/poison: got %d %s, want %d", rec.Code, rec.Body, tc.wantStatus)
			}
			if emitted != 1 {
				t.Errorf("emits: got %d, want 1", emitted)
			}
			if reg.Bool(faults.Poison) {
				t.Error("poison flag: got true, want false after the one-shot")
			}
			if tc.wantStatus == http.StatusOK {
				return
			}
			var p admin.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Header().Get("Content-Type") != admin.ProblemContentType {
				t.Fatalf("body: got %s (%v), want a problem", rec.Body, err)
			}
			if p.Field != "" {
				t.Errorf("problem field: got %q, want none (the value was valid)", p.Field)
			}
			if tc.wantDetail != "" && !strings.Contains(p.Detail, tc.wantDetail) {
				t.Errorf("problem detail: got %q, want it to say %q", p.Detail, tc.wantDetail)
			}
		})
	}
}
