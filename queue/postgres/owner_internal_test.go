package postgres

import (
	"context"
	"database/sql"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/orderflow/orderflow/queue/postgres/pgtest"
)

func TestOwnerLockClassSQLIsTheClass(t *testing.T) {
	if got, want := ownerLockClassSQL, strconv.Itoa(int(ownerLockClass)); got != want {
		t.Errorf("ownerLockClassSQL: got %s, want %s", got, want)
	}
}

// A backend whose owner lock's session ends (a server restart, a network
// cut) takes an owner lock again on a new session: until it does, its
// deliveries taken over from it would count as abandoned.
func TestTheOwnerLockIsTakenAgainWhenItsSessionEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dsn := pgtest.SchemaURL(t, "queue_test")
	connCfg, err := parseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	o, err := takeOwnerLock(ctx, stdlib.OpenDB(*connCfg), watermill.NopLogger{}, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.close() })
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	holder := func(id int32) int {
		t.Helper()
		var pid int
		err := db.QueryRowContext(ctx, `SELECT coalesce(max(pid), 0) FROM pg_locks WHERE locktype = 'advisory'
			AND classid = $1::int4::oid AND objid = $2::int4::oid AND objsubid = 2 AND granted`, ownerLockClass, id).Scan(&pid)
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	first := o.ID()
	pid := holder(first)
	if pid == 0 {
		t.Fatalf("owner lock %d: held by no session, want it held", first)
	}
	if _, err := db.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	for {
		if id := o.ID(); id != first && holder(id) != 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no owner lock held again after its session ended: id %d, held by %d", o.ID(), holder(o.ID()))
		case <-time.After(10 * time.Millisecond):
		}
	}
}
