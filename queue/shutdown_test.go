package queue_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
)

// closingLogger reports when Watermill's router has begun closing: it logs
// "Waiting for messages" right after it cancelled its subscriptions and
// before it waits (up to CloseTimeout) for the running handlers.
type closingLogger struct {
	watermill.LoggerAdapter
	once    *sync.Once
	closing chan struct{}
}

func newClosingLogger() closingLogger {
	return closingLogger{LoggerAdapter: watermill.NopLogger{}, once: new(sync.Once), closing: make(chan struct{})}
}

func (l closingLogger) Info(msg string, fields watermill.LogFields) {
	if msg == "Waiting for messages" {
		l.once.Do(func() { close(l.closing) })
	}
	l.LoggerAdapter.Info(msg, fields)
}

func (l closingLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return closingLogger{LoggerAdapter: l.LoggerAdapter.With(fields), once: l.once, closing: l.closing}
}

// shutdownQueues runs test on a fresh queue of each backend, opened with
// logger.
func shutdownQueues(t *testing.T, test func(t *testing.T, q *queue.Queue, log closingLogger)) {
	everyBackend(t, "queue_shutdown", func(t *testing.T, url string) {
		log := newClosingLogger()
		q, err := queue.Open(context.Background(), queue.Config{URL: url, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = q.Close() })
		test(t, q, log)
	})
}

// startRouter runs r until the returned stop is called; stop returns Run's
// error.
func startRouter(t *testing.T, r *queue.Router) (stop func(), done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() { errs <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case <-time.After(15 * time.Second):
		t.Fatal("router did not start")
	}
	t.Cleanup(cancel)
	return cancel, errs
}

func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// delivery is what a handler saw.
type delivery struct{ uuid, attempt string }

// firstDelivery runs a new router of group on topic and returns the first
// message it handles (acking it).
func firstDelivery(t *testing.T, q *queue.Queue, group, topic string) delivery {
	t.Helper()
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: group, Retry: fastRetry(5)})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan delivery, 10)
	r.Handle("check", topic, func(msg *message.Message) error {
		seen <- delivery{msg.UUID, msg.Metadata.Get(backend.MetadataAttempt)}
		return nil
	})
	stop, done := startRouter(t, r)
	d := within(t, seen, "a delivery to the next router")
	stop()
	if err := within(t, done, "the next router to stop"); err != nil {
		t.Errorf("next router: %v", err)
	}
	return d
}

// TestShutdownLetsRunningHandlersFinish: when Run's context ends, a handler
// that is running keeps a live context, and its ack is recorded: the
// message is not delivered again. No message is handed out after the close
// began, not even the one waiting for the slot that the running handler
// frees when it finishes during the close.
func TestShutdownLetsRunningHandlersFinish(t *testing.T) {
	shutdownQueues(t, func(t *testing.T, q *queue.Queue, log closingLogger) {
		const topic = "jobs"
		// One handler at a time: m2 waits for m1's slot.
		r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g", Concurrency: 1, Retry: fastRetry(5), CloseTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan *message.Message, 10)
		release := make(chan struct{})
		finished := make(chan error, 10)
		r.Handle("slow", topic, func(msg *message.Message) error {
			started <- msg
			select {
			case <-release:
				finished <- nil
				return nil
			case <-msg.Context().Done():
				finished <- msg.Context().Err()
				return msg.Context().Err()
			}
		})
		stop, done := startRouter(t, r)
		if err := q.Publisher().Publish(topic, message.NewMessage("m1", nil)); err != nil {
			t.Fatal(err)
		}
		running := within(t, started, "the handler to start")
		// Stored before the close, waiting for m1's slot (perhaps claimed
		// already): m1's ack frees the slot during the close, and m2 must
		// not be handed out then.
		if err := q.Publisher().Publish(topic, message.NewMessage("m2", nil)); err != nil {
			t.Fatal(err)
		}

		stop()
		within(t, log.closing, "the router to begin closing")
		if err := running.Context().Err(); err != nil {
			t.Errorf("the running handler's context ended when the router began closing: %v", err)
		}
		close(release)
		if err := within(t, finished, "the handler to finish"); err != nil {
			t.Errorf("handler: %v, want it to finish normally", err)
		}
		if err := within(t, done, "Run to return"); err != nil {
			t.Errorf("run: %v", err)
		}
		for len(started) > 0 {
			t.Errorf("message %s was handed out after the router began closing", (<-started).UUID)
		}

		// m1 was acked: the next router's first message is m2, at its
		// first attempt, and m1 never comes back.
		if q.Backend().Name() == "memory" {
			// Not on memory://: GoChannel keeps nothing once its
			// subscription is gone, so m2, not handed out, is dropped and
			// the next router gets nothing.
			return
		}
		if got := firstDelivery(t, q, "g", topic); got != (delivery{"m2", "1"}) {
			t.Errorf("next router's first delivery: %+v, want m2 at attempt 1 (m1 was acked)", got)
		}
	})
}

// TestShutdownCancelsHandlersThatOutliveCloseTimeout: a handler still running
// when CloseTimeout has passed gets its context cancelled, and its message
// is delivered again, this attempt counted.
func TestShutdownCancelsHandlersThatOutliveCloseTimeout(t *testing.T) {
	shutdownQueues(t, func(t *testing.T, q *queue.Queue, log closingLogger) {
		const topic = "jobs"
		// CloseTimeout is what this test is about; the handler below
		// never finishes on its own.
		r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g", Retry: fastRetry(5), CloseTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan *message.Message, 10)
		r.Handle("stuck", topic, func(msg *message.Message) error {
			started <- msg
			<-msg.Context().Done()
			return msg.Context().Err()
		})
		stop, done := startRouter(t, r)
		if err := q.Publisher().Publish(topic, message.NewMessage("m1", nil)); err != nil {
			t.Fatal(err)
		}
		running := within(t, started, "the handler to start")

		stop()
		within(t, log.closing, "the router to begin closing")
		if err := running.Context().Err(); err != nil {
			t.Errorf("the running handler's context ended when the router began closing, not after CloseTimeout: %v", err)
		}
		if err := within(t, done, "Run to return"); err != nil {
			t.Errorf("run: %v", err)
		}
		if err := running.Context().Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("after Run returned, the stuck handler's context: %v, want cancelled", err)
		}

		if q.Backend().Name() == "memory" {
			// Not on memory://: GoChannel forgets a message whose
			// subscription closed, so m1 is not delivered again.
			return
		}
		if got := firstDelivery(t, q, "g", topic); got != (delivery{"m1", "2"}) {
			t.Errorf("next router's first delivery: %+v, want m1 again at attempt 2", got)
		}
	})
}

// A handler that ignores its cancellation does not hold Run up beyond
// CloseTimeout: Run returns while it still runs (on one of the router's
// pooled goroutines, which ends when the handler returns).
func TestShutdownDoesNotWaitForAHandlerThatIgnoresCancellation(t *testing.T) {
	shutdownQueues(t, func(t *testing.T, q *queue.Queue, log closingLogger) {
		const topic = "jobs"
		r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g", Retry: fastRetry(5), CloseTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan struct{}, 10)
		release := make(chan struct{})
		returned := make(chan struct{})
		r.Handle("deaf", topic, func(msg *message.Message) error {
			defer func() { returned <- struct{}{} }()
			started <- struct{}{}
			<-release // not msg.Context()
			return nil
		})
		stop, done := startRouter(t, r)
		if err := q.Publisher().Publish(topic, message.NewMessage("m1", nil)); err != nil {
			t.Fatal(err)
		}
		within(t, started, "the handler to start")
		stop()
		within(t, done, "Run to return with the handler still running")
		select {
		case <-returned:
			t.Error("the handler returned before it was released")
		default:
		}
		close(release)
		within(t, returned, "the handler to return once released")
	})
}

// A router given up before Run (its service's start-up failed further on)
// is released by Close: nothing of it keeps running on a queue that stays
// open, and it cannot be run after. Close after Run is a no-op.
func TestCloseReleasesARouterThatNeverRan(t *testing.T) {
	shutdownQueues(t, func(t *testing.T, q *queue.Queue, _ closingLogger) {
		before := goleak.IgnoreCurrent()
		r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g"})
		if err != nil {
			t.Fatal(err)
		}
		r.Handle("h", "jobs", func(*message.Message) error { return nil })
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := goleak.Find(before); err != nil {
			t.Errorf("after Close of a router that never ran: %v", err)
		}
		if err := r.Run(context.Background()); err == nil {
			t.Error("Run after Close: got no error")
		}
		if err := r.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}

		ran, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g"})
		if err != nil {
			t.Fatal(err)
		}
		ran.Handle("h", "jobs", func(*message.Message) error { return nil })
		stop, done := startRouter(t, ran)
		if err := ran.Close(); err != nil {
			t.Errorf("Close while the router runs: %v", err)
		}
		stop()
		if err := within(t, done, "Run to return"); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// A graceful stop that runs out of CloseTimeout and cancels a handler is
// what the bound is for, not a failure: the router's record of it is a
// warning saying what becomes of the handler's message, not Watermill's
// "Cannot close router" at error level.
func TestACloseTimeoutIsAWarningNotAnError(t *testing.T) {
	everyBackend(t, "queue_close_timeout", func(t *testing.T, url string) {
		logs := newRecordingLogger()
		q, err := queue.Open(context.Background(), queue.Config{URL: url, Logger: logs})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = q.Close() })
		const topic = "jobs"
		r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g", Retry: fastRetry(5), CloseTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan struct{}, 10)
		r.Handle("slow", topic, func(msg *message.Message) error {
			started <- struct{}{}
			<-msg.Context().Done()
			return msg.Context().Err()
		})
		stop, done := startRouter(t, r)
		if err := q.Publisher().Publish(topic, message.NewMessage("m1", nil)); err != nil {
			t.Fatal(err)
		}
		within(t, started, "the handler to start")
		stop()
		if err := within(t, done, "Run to return"); err != nil {
			t.Errorf("run: %v", err)
		}
		warned := false
		for _, r := range logs.all() {
			if r.level >= slog.LevelError {
				t.Errorf("record at %s: %q %v; want no error for a stop that cut a handler short", r.level, r.msg, r.fields)
			}
			if r.level == slog.LevelWarn && strings.Contains(r.msg, "close timeout") {
				warned = true
			}
		}
		if !warned {
			t.Errorf("no warning about the handler cut short at the close timeout; records: %+v", logs.all())
		}
	})
}
