package inbox_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/queue/inbox"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openDB opens a consumer's database with maxConns pooled connections and
// a table its effects go to.
func openDB(t testing.TB, maxConns int) *sql.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "consumer.db")
	db, err := sql.Open("sqlite3", "file:"+path+
		"?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate&_synchronous=NORMAL")
	require.NoError(t, err)
	db.SetMaxOpenConns(maxConns)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Exec(`CREATE TABLE effects (message_id TEXT NOT NULL, note TEXT NOT NULL)`)
	require.NoError(t, err)
	return db
}

func newInbox(t testing.TB, db *sql.DB, cfg inbox.Config) *inbox.Inbox {
	t.Helper()
	ib, err := inbox.New(context.Background(), db, cfg)
	require.NoError(t, err)
	return ib
}

func countRows(t testing.TB, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(query, args...).Scan(&n))
	return n
}

// effect records one effect of handling id in tx.
func effect(id string) inbox.TxFunc {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO effects (message_id, note) VALUES (?, 'charged')`, id)
		return err
	}
}

func TestHandle(t *testing.T) {
	errDeclined := errors.New("declined")
	type delivery struct {
		group, id string
		fail      bool // fn records its effect, then fails
		wantDup   bool
		wantErr   bool
	}
	tests := []struct {
		name        string
		deliveries  []delivery
		wantEffects map[string]int // message id -> committed effects
		wantRecords int
	}{
		{
			name:        "first delivery runs fn",
			deliveries:  []delivery{{group: "payment", id: "m1"}},
			wantEffects: map[string]int{"m1": 1},
			wantRecords: 1,
		},
		{
			name: "redelivery is a duplicate and skipped",
			deliveries: []delivery{
				{group: "payment", id: "m1"},
				{group: "payment", id: "m1", wantDup: true},
				{group: "payment", id: "m1", wantDup: true},
			},
			wantEffects: map[string]int{"m1": 1},
			wantRecords: 1,
		},
		{
			name: "fn error rolls back and the next delivery runs fn again",
			deliveries: []delivery{
				{group: "payment", id: "m1", fail: true, wantErr: true},
				{group: "payment", id: "m1"},
				{group: "payment", id: "m1", wantDup: true},
			},
			wantEffects: map[string]int{"m1": 1},
			wantRecords: 1,
		},
		{
			name: "groups deduplicate independently",
			deliveries: []delivery{
				{group: "payment", id: "m1"},
				{group: "shipping", id: "m1"},
				{group: "shipping", id: "m1", wantDup: true},
			},
			wantEffects: map[string]int{"m1": 2},
			wantRecords: 2,
		},
		{
			name: "missing group or id is rejected",
			deliveries: []delivery{
				{group: "", id: "m1", wantErr: true},
				{group: "payment", id: "", wantErr: true},
			},
			wantEffects: map[string]int{},
			wantRecords: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t, 1)
			ib := newInbox(t, db, inbox.Config{})
			ran := 0
			for i, d := range tt.deliveries {
				dup, err := ib.Handle(context.Background(), d.group, d.id, func(ctx context.Context, tx *sql.Tx) error {
					ran++
					if err := effect(d.id)(ctx, tx); err != nil {
						return err
					}
					if d.fail {
						return errDeclined
					}
					return nil
				})
				if d.wantErr {
					require.Error(t, err, "delivery %d", i)
					if d.fail {
						assert.ErrorIs(t, err, errDeclined, "delivery %d", i)
					}
				} else {
					require.NoError(t, err, "delivery %d", i)
				}
				assert.Equal(t, d.wantDup, dup, "delivery %d: duplicate", i)
			}
			for id, want := range tt.wantEffects {
				got := countRows(t, db, `SELECT COUNT(*) FROM effects WHERE message_id = ?`, id)
				assert.Equal(t, want, got, "effects of %s: got %d, want %d", id, got, want)
			}
			got := countRows(t, db, `SELECT COUNT(*) FROM inbox_processed`)
			assert.Equal(t, tt.wantRecords, got, "processed records: got %d, want %d", got, tt.wantRecords)
		})
	}
}

func TestHandleConcurrentDeliveriesRunFnOnce(t *testing.T) {
	for _, conns := range []int{1, 8} {
		t.Run(fmt.Sprintf("%d connections", conns), func(t *testing.T) {
			db := openDB(t, conns)
			ib := newInbox(t, db, inbox.Config{})

			const deliveries = 20
			var ran, dups atomic.Int64
			start := make(chan struct{})
			errs := make(chan error, deliveries)
			var wg sync.WaitGroup
			for range deliveries {
				wg.Go(func() {
					<-start
					dup, err := ib.Handle(context.Background(), "payment", "charge-o-1", func(ctx context.Context, tx *sql.Tx) error {
						ran.Add(1)
						return effect("charge-o-1")(ctx, tx)
					})
					if dup {
						dups.Add(1)
					}
					errs <- err
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			assert.Equal(t, int64(1), ran.Load(), "fn ran")
			assert.Equal(t, int64(deliveries-1), dups.Load(), "duplicates")
			assert.Equal(t, 1, countRows(t, db, `SELECT COUNT(*) FROM effects`), "committed effects")
		})
	}
}

func TestHandleCommitsDespiteCancellationAfterFn(t *testing.T) {
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	dup, err := ib.Handle(ctx, "payment", "m1", func(ctx context.Context, tx *sql.Tx) error {
		if err := effect("m1")(ctx, tx); err != nil {
			return err
		}
		cancel() // e.g. shutdown begins right after the work is done
		return nil
	})
	require.NoError(t, err)
	assert.False(t, dup)
	assert.Equal(t, 1, countRows(t, db, `SELECT COUNT(*) FROM effects`))
	assert.Equal(t, 1, countRows(t, db, `SELECT COUNT(*) FROM inbox_processed`))
}

func TestHandleCancelledBeforeStartDoesNothing(t *testing.T) {
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := ib.Handle(ctx, "payment", "m1", effect("m1"))
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, countRows(t, db, `SELECT COUNT(*) FROM inbox_processed`))
}

func TestHandlePanicRollsBack(t *testing.T) {
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{})
	func() {
		defer func() { assert.Equal(t, "boom", recover()) }()
		_, _ = ib.Handle(context.Background(), "payment", "m1", func(ctx context.Context, tx *sql.Tx) error {
			if err := effect("m1")(ctx, tx); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	assert.Equal(t, 0, countRows(t, db, `SELECT COUNT(*) FROM effects`))
	assert.Equal(t, 0, countRows(t, db, `SELECT COUNT(*) FROM inbox_processed`))

	// The connection went back to the pool: the redelivery runs.
	dup, err := ib.Handle(context.Background(), "payment", "m1", effect("m1"))
	require.NoError(t, err)
	assert.False(t, dup)
	assert.Equal(t, 1, countRows(t, db, `SELECT COUNT(*) FROM effects`))
}

// holdInbox starts a Handle call for id whose fn waits, and returns once
// that fn runs: calls made meanwhile queue behind it. finish lets it
// record its effect and returns its error.
func holdInbox(t *testing.T, ib *inbox.Inbox, id string) (finish func() error) {
	t.Helper()
	release, running := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := ib.Handle(context.Background(), "payment", id, func(ctx context.Context, tx *sql.Tx) error {
			close(running)
			<-release
			return effect(id)(ctx, tx)
		})
		done <- err
	}()
	<-running
	return func() error {
		close(release)
		return <-done
	}
}

// awaitWaiting waits until n calls wait for ib's next shared transaction,
// for at most 10s: a test that makes calls one by one and waits for each
// so has them queued in that order.
func awaitWaiting(t *testing.T, ib *inbox.Inbox, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ib.Waiting() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("calls waiting for the inbox's transaction: got %d after 10s, want %d", ib.Waiting(), n)
		}
	}
}

// TestConcurrentCallsShareATransactionAndFailAlone queues calls while
// another call's fn runs, so that they are run as one batch: they share a
// transaction, a failing and a panicking fn are rolled back alone, a
// duplicate within the batch is recognised, and the rest is committed.
func TestConcurrentCallsShareATransactionAndFailAlone(t *testing.T) {
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{})

	finish := holdInbox(t, ib, "m0")

	type outcome struct {
		id       string
		dup      bool
		err      error
		panicked any
	}
	var mu sync.Mutex
	txs := map[*sql.Tx]bool{}
	calls := []struct {
		id string
		fn inbox.TxFunc
	}{
		{"m1", effect("m1")},
		{"m2", func(ctx context.Context, tx *sql.Tx) error {
			if err := effect("m2")(ctx, tx); err != nil {
				return err
			}
			return errors.New("card declined by a bug")
		}},
		{"m3", func(ctx context.Context, tx *sql.Tx) error {
			if err := effect("m3")(ctx, tx); err != nil {
				return err
			}
			panic("boom")
		}},
		{"m1", effect("m1")}, // the same message again, in the same batch
		{"m4", effect("m4")},
	}
	outcomes := make(chan outcome, len(calls))
	var queued sync.WaitGroup
	for n, c := range calls {
		queued.Go(func() {
			o := outcome{id: c.id}
			defer func() {
				o.panicked = recover()
				outcomes <- o
			}()
			o.dup, o.err = ib.Handle(context.Background(), "payment", c.id, func(ctx context.Context, tx *sql.Tx) error {
				mu.Lock()
				txs[tx] = true
				mu.Unlock()
				return c.fn(ctx, tx)
			})
		})
		awaitWaiting(t, ib, n+1) // queue them in this order
	}
	require.NoError(t, finish())
	queued.Wait()
	close(outcomes)

	got := map[string][]outcome{}
	for o := range outcomes {
		got[o.id] = append(got[o.id], o)
	}
	assert.Len(t, txs, 1, "transactions the queued calls ran in")
	require.Len(t, got["m1"], 2)
	assert.NoError(t, got["m1"][0].err)
	assert.NoError(t, got["m1"][1].err)
	assert.True(t, got["m1"][0].dup != got["m1"][1].dup, "one of the two m1 calls is a duplicate: %+v", got["m1"])
	assert.ErrorContains(t, got["m2"][0].err, "card declined by a bug")
	assert.Equal(t, "boom", got["m3"][0].panicked)
	assert.NoError(t, got["m4"][0].err)
	assert.Equal(t, 3, countRows(t, db, `SELECT COUNT(*) FROM effects`), "effects of m0, m1 and m4")
	assert.Equal(t, 0, countRows(t, db, `SELECT COUNT(*) FROM effects WHERE message_id IN ('m2', 'm3')`), "effects of the failed calls")
	assert.Equal(t, 3, countRows(t, db, `SELECT COUNT(*) FROM inbox_processed`), "recorded ids")

	// The failed ones run again on redelivery.
	for _, id := range []string{"m2", "m3"} {
		dup, err := ib.Handle(context.Background(), "payment", id, effect(id))
		require.NoError(t, err)
		assert.False(t, dup, id)
	}
	assert.Equal(t, 5, countRows(t, db, `SELECT COUNT(*) FROM effects`))
}

// TestWaitsForATransactionEndWithTheContext: a call waiting behind another
// call's batch, or for the connection held elsewhere, gives up when its
// context ends.
func TestWaitsForATransactionEndWithTheContext(t *testing.T) {
	t.Run("behind a batch", func(t *testing.T) {
		db := openDB(t, 1)
		ib := newInbox(t, db, inbox.Config{})
		finish := holdInbox(t, ib, "m0")
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := ib.Handle(ctx, "payment", "m1", effect("m1"))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), time.Second, "waited for the other batch")
		require.NoError(t, finish())
		assert.Equal(t, 0, countRows(t, db, `SELECT COUNT(*) FROM effects WHERE message_id = 'm1'`))
	})
	t.Run("for the connection", func(t *testing.T) {
		db := openDB(t, 1)
		ib := newInbox(t, db, inbox.Config{})
		conn, err := db.Conn(context.Background()) // the pool's only connection
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = ib.Handle(ctx, "payment", "m1", effect("m1"))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), time.Second, "waited for the connection")
		require.NoError(t, conn.Close())
		dup, err := ib.Handle(context.Background(), "payment", "m1", effect("m1"))
		require.NoError(t, err)
		assert.False(t, dup)
	})
}

// TestAHandlerThatExitsItsGoroutineDoesNotBlockTheInbox: runtime.Goexit in
// fn (t.FailNow does it) ends the batch without a commit and leaves the
// inbox usable.
func TestAHandlerThatExitsItsGoroutineDoesNotBlockTheInbox(t *testing.T) {
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_, _ = ib.Handle(context.Background(), "payment", "m1", func(ctx context.Context, tx *sql.Tx) error {
			if err := effect("m1")(ctx, tx); err != nil {
				return err
			}
			runtime.Goexit()
			return nil
		})
	}()
	<-exited
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dup, err := ib.Handle(ctx, "payment", "m2", effect("m2"))
	require.NoError(t, err)
	assert.False(t, dup)
	assert.Equal(t, 0, countRows(t, db, `SELECT COUNT(*) FROM effects WHERE message_id = 'm1'`), "the exited handler's work")
	assert.Equal(t, 1, countRows(t, db, `SELECT COUNT(*) FROM effects WHERE message_id = 'm2'`))
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{RetentionBatchSize: 3})
	for i := range 10 {
		_, err := ib.Handle(ctx, "payment", fmt.Sprintf("m%d", i), effect(fmt.Sprintf("m%d", i)))
		require.NoError(t, err)
	}

	n, err := ib.PurgeProcessedBefore(ctx, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(0), n, "nothing is an hour old")

	n, err = ib.PurgeProcessedBefore(ctx, time.Now().Add(time.Second))
	require.NoError(t, err)
	assert.Equal(t, int64(10), n, "deleted in batches of 3")
	assert.Equal(t, 0, countRows(t, db, `SELECT COUNT(*) FROM inbox_processed`))

	// The documented trade-off: a redelivery older than the retention is
	// processed again.
	dup, err := ib.Handle(ctx, "payment", "m0", effect("m0"))
	require.NoError(t, err)
	assert.False(t, dup)
	assert.Equal(t, 2, countRows(t, db, `SELECT COUNT(*) FROM effects WHERE message_id = 'm0'`))
}

func TestRunRetention(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{Retention: 20 * time.Millisecond, RetentionInterval: 10 * time.Millisecond})
	_, err := ib.Handle(ctx, "payment", "m1", effect("m1"))
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- ib.RunRetention(ctx) }()
	require.Eventually(t, func() bool {
		return countRows(t, db, `SELECT COUNT(*) FROM inbox_processed`) == 0
	}, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	noRetention := newInbox(t, db, inbox.Config{})
	require.NoError(t, noRetention.RunRetention(context.Background()), "returns at once")
}

func TestConfigValidation(t *testing.T) {
	db := openDB(t, 1)
	tests := []struct {
		name    string
		cfg     inbox.Config
		wantErr bool
	}{
		{name: "defaults", cfg: inbox.Config{}},
		{name: "retention", cfg: inbox.Config{Retention: 24 * time.Hour}},
		{name: "negative retention", cfg: inbox.Config{Retention: -time.Second}, wantErr: true},
		{name: "negative interval", cfg: inbox.Config{RetentionInterval: -time.Second}, wantErr: true},
		{name: "negative batch", cfg: inbox.Config{RetentionBatchSize: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := inbox.New(context.Background(), db, tt.cfg)
			if tt.wantErr {
				assert.Error(t, err)
			} else {
				assert.NoError(t, err)
			}
		})
	}
	_, err := inbox.New(context.Background(), nil, inbox.Config{})
	assert.Error(t, err)
}

// TestDoSharesTransactionsWithoutRecording: Do's work joins the batch of
// the messages being handled, is rolled back alone when it fails, records
// no message id, and is committed when Do returns nil.
func TestDoSharesTransactionsWithoutRecording(t *testing.T) {
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{})

	finish := holdInbox(t, ib, "m0")
	var mu sync.Mutex
	txs := map[*sql.Tx]bool{}
	track := func(fn inbox.TxFunc) inbox.TxFunc {
		return func(ctx context.Context, tx *sql.Tx) error {
			mu.Lock()
			txs[tx] = true
			mu.Unlock()
			return fn(ctx, tx)
		}
	}
	calls := []struct {
		name string
		run  func() error
	}{
		{"request 1", func() error { return ib.Do(context.Background(), track(effect("request 1"))) }},
		{"message m1", func() error {
			_, err := ib.Handle(context.Background(), "payment", "m1", track(effect("m1")))
			return err
		}},
		{"failing request", func() error {
			return ib.Do(context.Background(), track(func(ctx context.Context, tx *sql.Tx) error {
				if err := effect("failing request")(ctx, tx); err != nil {
					return err
				}
				return errors.New("out of stock")
			}))
		}},
		{"request 2", func() error { return ib.Do(context.Background(), track(effect("request 2"))) }},
	}
	errs := make([]error, len(calls))
	var queued sync.WaitGroup
	for n, c := range calls {
		queued.Go(func() { errs[n] = c.run() })
		awaitWaiting(t, ib, n+1) // queue them in this order
	}
	require.NoError(t, finish())
	queued.Wait()

	for n, c := range calls {
		if c.name == "failing request" {
			assert.ErrorContains(t, errs[n], "out of stock", c.name)
			continue
		}
		assert.NoError(t, errs[n], c.name)
	}
	assert.Len(t, txs, 1, "transactions the queued calls ran in")
	assert.Equal(t, 4, countRows(t, db, `SELECT COUNT(*) FROM effects`), "effects of m0, request 1, m1 and request 2")
	assert.Equal(t, 0, countRows(t, db, `SELECT COUNT(*) FROM effects WHERE message_id = 'failing request'`))
	assert.Equal(t, 2, countRows(t, db, `SELECT COUNT(*) FROM inbox_processed`), "recorded ids: m0 and m1 only")

	require.ErrorContains(t, ib.Do(context.Background(), nil), "fn is nil")
}

// While the file cannot take writes (full), WriteHealth fails, naming the
// cause; a handler's own error does not make it fail; the next commit
// makes it pass again.
func TestWriteHealthFollowsTheTransactions(t *testing.T) {
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{})
	ctx := context.Background()
	write := func(id string, size int) error {
		_, err := ib.Handle(ctx, "payment", id, func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO effects (message_id, note) VALUES (?, ?)`, id, strings.Repeat("x", size))
			return err
		})
		return err
	}
	require.NoError(t, write("m-0", 1))
	require.NoError(t, ib.WriteHealth(), "after a commit")

	_, err := ib.Handle(ctx, "payment", "declined", func(context.Context, *sql.Tx) error { return errors.New("card declined") })
	require.ErrorContains(t, err, "card declined")
	require.NoError(t, ib.WriteHealth(), "after a handler's own error")

	var pages int
	require.NoError(t, db.QueryRow(`PRAGMA page_count`).Scan(&pages))
	_, err = db.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages))
	require.NoError(t, err)
	require.ErrorContains(t, write("m-big", 64<<10), "full")
	err = ib.WriteHealth()
	require.Error(t, err, "while the file is full")
	assert.Contains(t, err.Error(), "full")

	_, err = db.Exec(`PRAGMA max_page_count = 1073741823`)
	require.NoError(t, err)
	require.NoError(t, write("m-after", 1))
	assert.NoError(t, ib.WriteHealth(), "after a commit that followed the failure")
}

// When the batch's commit fails, a call whose own work had failed gets
// the commit's failure, not its own: its failure rested on another call's
// work, now not committed (here: a key taken by a call whose commit
// fails). A call's own error is otherwise handed back as it is.
func TestAFailedCommitFailsTheCallsThatFailedToo(t *testing.T) {
	db := openDB(t, 1)
	for _, q := range []string{
		`PRAGMA foreign_keys = ON`,
		`CREATE TABLE keys (k TEXT PRIMARY KEY)`,
		`CREATE TABLE parent (id TEXT PRIMARY KEY)`,
		`CREATE TABLE child (p TEXT REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)`,
	} {
		_, err := db.Exec(q)
		require.NoError(t, err)
	}
	ib := newInbox(t, db, inbox.Config{})
	errTaken := errors.New("key already taken")
	takeKey := func(orphan bool) inbox.TxFunc {
		return func(ctx context.Context, tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM keys WHERE k = 'k'`).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return errTaken
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO keys VALUES ('k')`); err != nil {
				return err
			}
			if orphan { // fails only at COMMIT
				_, err := tx.ExecContext(ctx, `INSERT INTO child VALUES ('nobody')`)
				return err
			}
			return nil
		}
	}

	alone := ib.Do(context.Background(), func(context.Context, *sql.Tx) error { return errTaken })
	assert.Equal(t, errTaken, alone, "a call's own error, alone in its batch")

	finish := holdInbox(t, ib, "m0")
	errs := make([]error, 2)
	var queued sync.WaitGroup
	for n, orphan := range []bool{true, false} {
		queued.Go(func() { errs[n] = ib.Do(context.Background(), takeKey(orphan)) })
		awaitWaiting(t, ib, n+1) // queue them in this order
	}
	require.NoError(t, finish())
	queued.Wait()

	for n, err := range errs {
		require.ErrorContains(t, err, "FOREIGN KEY constraint failed", "call %d", n)
	}
	assert.NotErrorIs(t, errs[1], errTaken, "the second call's answer rested on the first's uncommitted key")
	assert.Equal(t, 0, countRows(t, db, `SELECT COUNT(*) FROM keys`))
}

// Close releases the statement New prepared, on the connections it was
// prepared on, and an Inbox used after Close still works.
func TestCloseReleasesThePreparedStatement(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "consumer.db")
	plain, err := sql.Open("sqlite3", "")
	require.NoError(t, err)
	drv := plain.Driver()
	require.NoError(t, plain.Close())
	var open atomic.Int64 // driver statements prepared and not closed
	db := sql.OpenDB(countingConnector{
		dsn: "file:" + path + "?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate", drv: drv, open: &open,
	})
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1)

	ib := newInbox(t, db, inbox.Config{})
	dup, err := ib.Handle(ctx, "g", "m1", func(context.Context, *sql.Tx) error { return nil })
	require.NoError(t, err)
	require.False(t, dup)
	require.Equal(t, int64(1), open.Load(), "statements open while the Inbox is: its record statement")

	require.NoError(t, ib.Close())
	assert.Equal(t, int64(0), open.Load(), "statements open after Close")

	dup, err = ib.Handle(ctx, "g", "m1", func(context.Context, *sql.Tx) error { return nil })
	require.NoError(t, err, "Handle after Close")
	assert.True(t, dup, "m1 after Close: a duplicate")
	dup, err = ib.Handle(ctx, "g", "m2", func(context.Context, *sql.Tx) error { return nil })
	require.NoError(t, err, "Handle after Close")
	assert.False(t, dup, "m2 after Close: new")
}

// countingConnector opens connections of drv that count the driver
// statements they prepare and have not closed. Hiding the driver's
// optional interfaces makes database/sql prepare every statement, which
// is counted too (and closed after its one use).
type countingConnector struct {
	dsn  string
	drv  driver.Driver
	open *atomic.Int64
}

func (c countingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: conn, open: c.open}, nil
}

func (c countingConnector) Driver() driver.Driver { return c.drv }

type countingConn struct {
	driver.Conn
	open *atomic.Int64
}

func (c countingConn) Prepare(query string) (driver.Stmt, error) {
	s, err := c.Conn.Prepare(query)
	if err != nil {
		return nil, err
	}
	c.open.Add(1)
	return &countingStmt{Stmt: s, open: c.open}, nil
}

type countingStmt struct {
	driver.Stmt
	open   *atomic.Int64
	closed bool
}

func (s *countingStmt) Close() error {
	if !s.closed {
		s.closed = true
		s.open.Add(-1)
	}
	return s.Stmt.Close()
}
