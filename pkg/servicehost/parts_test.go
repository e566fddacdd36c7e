package servicehost_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/pkg/admin"
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
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := servicehost.Ready(t.Context(), r, ping, nil, q.Backend())
		if errors.Is(err, admin.ErrUnavailable) && strings.Contains(err.Error(), "another file") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the file was replaced: got %v, want admin.ErrUnavailable saying the path names another file", err)
		}
		time.Sleep(10 * time.Millisecond)
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
	case <-time.After(10 * time.Second):
		t.Fatal("router not running")
	}
	return q, r
}
