package servicehost_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
)

// failingWrites is a queue backend whose WriteHealth reports err.
type failingWrites struct {
	backend.Backend
	err error
}

func (f failingWrites) WriteHealth() error { return f.err }

// Ready fails while the queue says its writes fail, although its reads
// (the topic list) and the database's ping answer.
func TestReadyReportsFailingQueueWrites(t *testing.T) {
	q, err := queue.Open(t.Context(), queue.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "queue.db")})
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
	ping := func(context.Context) error { return nil }

	tests := []struct {
		name string
		b    backend.Backend
		want string // "" for ready
	}{
		{"the SQLite queue, writing", q.Backend(), ""},
		{"writes that succeed", failingWrites{q.Backend(), nil}, ""},
		{"writes failing", failingWrites{q.Backend(), errors.New("writes failing since 12:00:00: database or disk is full")}, "database or disk is full"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := servicehost.Ready(t.Context(), r, ping, tc.b)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want ready", err)
			case tc.want != "" && (!errors.Is(err, admin.ErrUnavailable) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want admin.ErrUnavailable saying %q", err, tc.want)
			}
		})
	}
}
