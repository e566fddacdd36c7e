package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	_ "github.com/mattn/go-sqlite3"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/queue/outbox"
)

// openDB opens a service database as the package doc recommends.
func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+
		"?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate&_synchronous=NORMAL")
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Exec(`CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, status TEXT NOT NULL)`)
	require.NoError(t, err)
	return db
}

func tempDB(t testing.TB) *sql.DB {
	return openDB(t, filepath.Join(t.TempDir(), "service.db"))
}

// inTx is a business transaction: committed when fn returns nil.
func inTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
			return
		}
		err = tx.Commit()
	}()
	return fn(tx)
}

// placeOrder inserts an order and its OrderPlaced message in one transaction.
func placeOrder(ctx context.Context, db *sql.DB, ob *outbox.Outbox, id string) error {
	return inTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders (id, status) VALUES (?, 'PLACED')`, id); err != nil {
			return err
		}
		msg := message.NewMessage(id, []byte(`{"order_id":"`+id+`"}`))
		msg.Metadata.Set("correlation_id", id)
		return ob.Store(ctx, tx, "order.events", msg)
	})
}

// collector records what a destination received (through the
// subscriptions, in any order) and what was published to it (in order).
type collector struct {
	mu        sync.Mutex
	seen      map[string]int
	msgs      []*message.Message
	at        map[string]time.Time
	published []string
	ch        chan struct{}
}

// recordingPublisher notes the order of Publish calls, which GoChannel's
// asynchronous delivery does not keep.
type recordingPublisher struct {
	message.Publisher
	col *collector
}

func (p recordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	p.col.mu.Lock()
	for _, m := range msgs {
		p.col.published = append(p.col.published, m.UUID)
	}
	p.col.mu.Unlock()
	return nil
}

func (c *collector) publishOrder() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.published)
}

func newCollector() *collector {
	return &collector{seen: map[string]int{}, at: map[string]time.Time{}, ch: make(chan struct{}, 1)}
}

func (c *collector) add(m *message.Message) {
	c.mu.Lock()
	c.seen[m.UUID]++
	c.msgs = append(c.msgs, m)
	if _, ok := c.at[m.UUID]; !ok {
		c.at[m.UUID] = time.Now()
	}
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *collector) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.seen))
	for k, v := range c.seen {
		out[k] = v
	}
	return out
}

// waitCount waits until at least n messages arrived.
func (c *collector) waitCount(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for c.count() < n {
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("received %d messages, want %d", c.count(), n)
		}
	}
}

// newDestination returns an in-memory destination (GoChannel) and a
// collector that receives every message published to topics.
func newDestination(t testing.TB, topics ...string) (message.Publisher, *collector) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dst := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1024}, nil)
	col := newCollector()
	var wg sync.WaitGroup
	for _, topic := range topics {
		ch, err := dst.Subscribe(ctx, topic)
		require.NoError(t, err)
		wg.Go(func() {
			for m := range ch {
				col.add(m)
				m.Ack()
			}
		})
	}
	t.Cleanup(func() {
		cancel()
		require.NoError(t, dst.Close())
		wg.Wait()
	})
	return recordingPublisher{Publisher: dst, col: col}, col
}

// startForwarder runs a forwarder until the test ends or stop is called;
// stop closes it.
func startForwarder(t testing.TB, db *sql.DB, dst message.Publisher, cfg outbox.ForwarderConfig) (f *outbox.Forwarder, stop func()) {
	return runForwarder(t, db, dst, cfg, false)
}

// runForwarder is startForwarder; with byCancel, stop cancels Run's
// context instead of calling Close.
func runForwarder(t testing.TB, db *sql.DB, dst message.Publisher, cfg outbox.ForwarderConfig, byCancel bool) (f *outbox.Forwarder, stop func()) {
	t.Helper()
	f, err := outbox.NewForwarder(db, dst, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- f.Run(ctx) }()
	select {
	case <-f.Running():
	case err := <-runErr:
		t.Fatalf("forwarder stopped: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("forwarder not running after 5s")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if byCancel {
				cancel()
			} else {
				require.NoError(t, f.Close())
			}
			require.NoError(t, <-runErr)
			cancel()
		})
	}
	t.Cleanup(stop)
	return f, stop
}

func waitPending(t testing.TB, f *outbox.Forwarder, want int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, err := f.Pending(context.Background())
		require.NoError(t, err)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending after %s: got %d, want %d", timeout, n, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
