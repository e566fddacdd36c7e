//go:build unix

package outbox_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// Environment of the helper process (the test binary re-executed as a
// service: order database + outbox + forwarder to the SQLite queue).
const (
	envHelper     = "ORDERFLOW_OUTBOX_HELPER" // "1" in the child
	envServiceDB  = "ORDERFLOW_OUTBOX_SERVICE_DB"
	envQueue      = "ORDERFLOW_OUTBOX_QUEUE"
	envPlaceOrder = "ORDERFLOW_OUTBOX_PLACE_ORDER" // order id to place, or empty
	envCrashPoint = "ORDERFLOW_OUTBOX_CRASH_POINT" // crashAfterCommit, crashAfterForward or empty
)

const (
	// crashAfterCommit: SIGKILL right after the local commit of the order
	// and its outbox message, before any forwarder runs.
	crashAfterCommit = "after-commit"
	// crashAfterForward: SIGKILL right after the message was published to
	// the queue, before the forwarder commits its outbox offset.
	crashAfterForward = "after-forward"
)

// TestHelperProcess is the child of TestCrashSafety; it does nothing in a
// normal run.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		t.Skip("helper process of TestCrashSafety")
	}
	if err := runService(t); err != nil {
		os.Stderr.WriteString("service: " + err.Error() + "\n")
		os.Exit(2)
	}
	os.Exit(0)
}

func killSelf() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}

// killAfterPublish dies as soon as a publish to the queue has returned: the
// messages are durable in the queue, the outbox offset is not committed.
type killAfterPublish struct{ message.Publisher }

func (p killAfterPublish) Publish(topic string, msgs ...*message.Message) error {
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	killSelf()
	return nil
}

// runService places an order (if asked), then forwards the outbox to the
// queue until it is empty, dying at the configured crash point.
func runService(t *testing.T) error {
	ctx := context.Background()
	db := openDB(t, os.Getenv(envServiceDB))
	ob, err := outbox.New(ctx, db, outbox.Config{})
	if err != nil {
		return err
	}
	crash := os.Getenv(envCrashPoint)
	if id := os.Getenv(envPlaceOrder); id != "" {
		if err := placeOrder(ctx, db, ob, id); err != nil {
			return err
		}
		if crash == crashAfterCommit {
			killSelf()
		}
	}

	q, err := sqlite.Open(ctx, os.Getenv(envQueue), sqlite.Config{})
	if err != nil {
		return err
	}
	defer q.Close()
	var dst message.Publisher = q.Publisher()
	if crash == crashAfterForward {
		dst = killAfterPublish{dst}
	}
	f, err := outbox.NewForwarder(db, dst, outbox.ForwarderConfig{Outbox: ob})
	if err != nil {
		return err
	}
	runErr := make(chan error, 1)
	go func() { runErr <- f.Run(ctx) }()
	for {
		n, err := f.Pending(ctx)
		if err == nil && n == 0 {
			break
		}
		select {
		case err := <-runErr:
			return errors.Join(errors.New("forwarder stopped"), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return errors.Join(f.Close(), <-runErr)
}

// TestCrashSafety kills the service process at each crash point and
// restarts it: the order's message reaches the consumer, and the consumer,
// whose effects go through the inbox, applies it exactly once.
func TestCrashSafety(t *testing.T) {
	if os.Getenv(envHelper) == "1" {
		t.Skip("in the helper process")
	}
	tests := []struct {
		name           string
		runs           []string // crash point of each run of the service; "" = clean
		wantDeliveries int64    // deliveries to the consumer
	}{
		{
			name:           "killed after the local commit, before forwarding",
			runs:           []string{crashAfterCommit, ""},
			wantDeliveries: 1,
		},
		{
			name:           "then killed after forwarding, before the outbox ack",
			runs:           []string{crashAfterCommit, crashAfterForward, ""},
			wantDeliveries: 2, // forwarded twice: the inbox absorbs the duplicate
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			serviceDB := filepath.Join(dir, "order.db")
			queuePath := filepath.Join(dir, "queue.db")

			// The consumer: another service, its own database and inbox.
			consumerDB := openDB(t, filepath.Join(dir, "payment.db"))
			_, err := consumerDB.Exec(`CREATE TABLE charges (order_id TEXT NOT NULL)`)
			require.NoError(t, err)
			ib, err := inbox.New(ctx, consumerDB, inbox.Config{})
			require.NoError(t, err)
			q, err := sqlite.Open(ctx, queuePath, sqlite.Config{})
			require.NoError(t, err)
			sub, err := q.Subscriber(backend.SubscriberConfig{ConsumerGroup: "payment"})
			require.NoError(t, err)
			charge, err := ib.Handler(inbox.HandlerConfig{ConsumerGroup: "payment"},
				func(ctx context.Context, msg *message.Message, tx *sql.Tx) ([]*message.Message, error) {
					_, err := tx.ExecContext(ctx, `INSERT INTO charges (order_id) VALUES (?)`,
						msg.Metadata.Get("correlation_id"))
					return nil, err
				})
			require.NoError(t, err)
			var deliveries atomic.Int64
			router, err := message.NewRouter(message.RouterConfig{}, nil)
			require.NoError(t, err)
			router.AddConsumerHandler("charge", "order.events", sub, func(msg *message.Message) error {
				deliveries.Add(1)
				_, err := charge(msg)
				return err
			})
			runCtx, stop := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() { assert.NoError(t, router.Run(runCtx)) })
			t.Cleanup(func() {
				stop()
				wg.Wait()
				assert.NoError(t, q.Close())
			})
			<-router.Running()

			for i, crash := range tt.runs {
				env := []string{
					envHelper + "=1",
					envServiceDB + "=" + serviceDB,
					envQueue + "=" + queuePath,
					envCrashPoint + "=" + crash,
				}
				if i == 0 {
					env = append(env, envPlaceOrder+"=o-1")
				}
				killed := runHelper(t, env)
				assert.Equal(t, crash != "", killed, "run %d (crash point %q) killed", i, crash)

				if crash == crashAfterCommit {
					// The order and its message are committed, nothing was
					// forwarded.
					orders, unforwarded := inspectService(t, serviceDB)
					assert.Equal(t, 1, orders, "orders after the crash")
					assert.Equal(t, 1, unforwarded, "outbox messages not forwarded")
					time.Sleep(50 * time.Millisecond)
					assert.Equal(t, int64(0), deliveries.Load(), "deliveries before the restart")
				}
			}

			require.Eventually(t, func() bool { return deliveries.Load() >= tt.wantDeliveries },
				10*time.Second, 10*time.Millisecond, "deliveries: got %d, want %d", deliveries.Load(), tt.wantDeliveries)
			time.Sleep(200 * time.Millisecond) // anything more would arrive now
			assert.Equal(t, tt.wantDeliveries, deliveries.Load(), "deliveries")
			var charges, processed int
			require.NoError(t, consumerDB.QueryRow(`SELECT COUNT(*) FROM charges WHERE order_id = 'o-1'`).Scan(&charges))
			require.NoError(t, consumerDB.QueryRow(`SELECT COUNT(*) FROM inbox_processed`).Scan(&processed))
			assert.Equal(t, 1, charges, "charges: the effect applied exactly once")
			assert.Equal(t, 1, processed, "inbox records")
			_, unforwarded := inspectService(t, serviceDB)
			assert.Equal(t, 0, unforwarded, "outbox messages not forwarded at the end")
		})
	}
}

// runHelper runs the service process to its end and reports whether it was
// killed by SIGKILL; any other failure fails the test.
func runHelper(t *testing.T, env []string) (killed bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return false
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL && ctx.Err() == nil {
			return true
		}
	}
	t.Fatalf("service process: %v\n%s", err, out.String())
	return false
}

// inspectService counts the orders and the outbox messages the forwarder
// has not acked, reading the service's file while it is not running.
func inspectService(t *testing.T, path string) (orders, unforwarded int) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000")
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM orders`).Scan(&orders))
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM watermill_outbox WHERE "offset" > COALESCE(
		(SELECT offset_acked FROM watermill_offsets_outbox WHERE consumer_group = ?), 0)`,
		outbox.DefaultConsumerGroup).Scan(&unforwarded))
	return orders, unforwarded
}
