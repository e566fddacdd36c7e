package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// Statistics asked for by many callers at once (admin GET /stats from a few
// dashboards, a metrics scrape) all answer, and the process goes on
// consuming meanwhile: the read connections they share with the
// subscribers are not all taken by calls that each wait for a second one.
func TestConcurrentStatsAnswerAndConsumptionGoesOn(t *testing.T) {
	b := openShared(t, filepath.Join(t.TempDir(), "queue.db"), sqlite.Config{})
	sub, err := b.NewSubscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs, err := sub.Subscribe(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}

	// The callers' work is not bounded by the clock (on a busy machine
	// 1,600 Stats calls take what they take); only the wait for the
	// consumption is, and a hang: either gives up the callers' calls.
	const callers = 32
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	start := make(chan struct{})
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			<-start
			for range 50 {
				if _, err := b.Inspector().Stats(ctx); err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
			}
		})
	}
	close(start)
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		m.Ack()
	case <-time.After(30 * time.Second):
		t.Error("no message consumed within 30s while statistics were asked for")
		cancel()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		t.Error("the statistics callers did not finish within 5 minutes")
		cancel()
		<-done
	}
	close(errs)
	for err := range errs {
		t.Errorf("Stats: %v", err)
	}
}
