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
	o, err := takeOwnerLock(ctx, stdlib.OpenDB(*connCfg), watermill.NopLogger{}, 20*time.Millisecond, time.Hour)
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
		if id := o.ID(); holder(id) != 0 && holder(id) != pid {
			if id != first {
				t.Errorf("owner id after the session ended: got %d, want %d again (still free, and named by its deliveries)", id, first)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no owner lock held again after its session ended: id %d, held by %d", o.ID(), holder(o.ID()))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Two claims of deliveries a dead owner left, at the same time, both find
// them abandoned: the owner's lock is tried shared, so the first claim's
// try (held until its transaction ends) does not make the second take the
// owner for alive. Deliveries given back unrun all share noOwner, so this
// is the common case, not a race.
func TestConcurrentClaimsOfOneDeadOwnersDeliveriesBothFindThemAbandoned(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b := openFresh(ctx, t, Config{})
	session := holdGroupLock(ctx, t, b)
	for _, uuid := range []string{"m-1", "m-2"} {
		if _, err := b.db.ExecContext(ctx, `INSERT INTO queue_delivery_attempts
			(topic, consumer_group, message_uuid, attempts, in_flight, owner, solo_runs, delivered_at)
			VALUES ('jobs', 'g', $1, 1, true, $2, 1, now())`, uuid, noOwner); err != nil {
			t.Fatal(err)
		}
	}
	// The first claim, its transaction still open.
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	var first delivery
	var inFlight bool
	if err := tx.QueryRowContext(ctx, claimSQL, "jobs", "g", "m-1", b.ownerID(), 1, "", session.pid, groupLockKey("jobs", "g"), session.vxid).Scan(
		&first.attempt, &first.firstFailedAt, &first.lastError, &first.abandoned, &first.soloRuns, &inFlight, new(float64)); err != nil {
		t.Fatal(err)
	}
	second, err := b.claimDelivery(ctx, "jobs", "g", "m-2", "", 1, session, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]delivery{"first": first, "second": second} {
		if !d.abandoned || d.soloRuns != 1 {
			t.Errorf("%s claim: got abandoned %v with %d runs alone, want abandoned with 1", name, d.abandoned, d.soloRuns)
		}
	}
}
