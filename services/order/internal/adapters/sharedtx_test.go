package adapters

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/services/order/internal/app"
)

// InTx's work (a request's) commits in the inbox's shared transactions,
// with the replies queued beside it: a request whose work fails only at
// COMMIT (a deferred foreign key here) fails the reply committed with it.
// In a transaction of its own, the reply would commit.
func TestInTxSharesTheInboxTransactions(t *testing.T) {
	s := streamStore(t)
	ctx := context.Background()
	for _, q := range []string{
		`PRAGMA foreign_keys = ON`,
		`CREATE TABLE parent (id TEXT PRIMARY KEY)`,
		`CREATE TABLE child (p TEXT REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)`,
	} {
		if _, err := s.db.Writer.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	release, running := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() { // holds the inbox while the other two queue behind it
		_, err := s.InInbox(ctx, "order", "m-0", func(context.Context, app.Tx) error {
			close(running)
			<-release
			return nil
		})
		held <- err
	}()
	<-running

	var wg sync.WaitGroup
	var request, reply error
	wg.Go(func() {
		request = s.InTx(ctx, func(ctx context.Context, tx app.Tx) error {
			_, err := tx.(*storeTx).tx.ExecContext(ctx, `INSERT INTO child VALUES ('nobody')`)
			return err
		})
	})
	awaitWaiting(t, s, 1) // queue them in this order
	wg.Go(func() {
		_, reply = s.InInbox(ctx, "order", "m-1", func(context.Context, app.Tx) error { return nil })
	})
	awaitWaiting(t, s, 2)
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	for name, err := range map[string]error{"request": request, "reply": reply} {
		if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY constraint failed") {
			t.Errorf("%s: got %v, want the shared commit's foreign key failure", name, err)
		}
	}
}

// awaitWaiting waits until n calls wait for the next of s's shared
// transactions, for at most 10s.
func awaitWaiting(t *testing.T, s *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.inbox.Waiting() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("calls waiting for the inbox's transaction: got %d after 10s, want %d", s.inbox.Waiting(), n)
		}
	}
}
