package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/orderflow/orderflow/queue/retry"
)

// ownerLockClass is the first key of the advisory lock (the two-int form,
// a key space apart from the one-bigint locks of offsets.go and ddl) that
// each Backend holds for as long as it is open, its owner id the second.
// A claim records its backend's owner id with the delivery; the next claim
// of that delivery takes it for abandoned only if the delivery was still
// in flight and its owner's lock is free: the process died (its session
// ended with it). A delivery taken over from a live owner (its handler
// outlived the ack deadline) is not abandoned.
//
// A dead process's sessions end one by one: a consumer of the group may
// take its message (the subscription's session has ended) a moment
// before its owner lock is let go, and count that one delivery as not
// abandoned. The message then runs beside the others once more, and a
// crash it causes there is counted at the next claim.
const ownerLockClass int32 = 0x6f776e72 // "ownr"

// ownerLockClassSQL is ownerLockClass in SQL.
const ownerLockClassSQL = "1870098034"

// liveOwnersSQL selects the owner ids whose lock is held: the backends
// open now (column owner).
const liveOwnersSQL = `SELECT DISTINCT objid::bigint::int4 AS owner FROM pg_locks
	WHERE locktype = 'advisory' AND classid = ` + ownerLockClassSQL + `::bigint::oid AND objsubid = 2 AND granted`

// ownerCheckInterval is how often the backend checks the session holding
// its owner lock, and takes the lock again on a new one if it ended (a
// server restart, a network cut).
const ownerCheckInterval = 5 * time.Second

// noOwner is the owner id of a delivery nobody holds: a claim takes its
// lock (nobody else does: owner ids are never 0), so a delivery in flight
// with noOwner counts as abandoned.
const noOwner int32 = 0

// ownerLock is a Backend's owner lock and the session holding it.
type ownerLock struct {
	db         *sql.DB // at most one connection: the session holding the lock
	id         atomic.Int32
	logger     watermill.LoggerAdapter
	checkEvery time.Duration
	outage     outageLog // of taking the lock again; only keep touches it

	stop context.CancelFunc
	done chan struct{}
}

// takeOwnerLock picks an owner id no open backend holds and takes its lock
// on a session of db's server, kept until close and checked every
// checkEvery (ownerCheckInterval). While the lock cannot be taken again
// (the server unreachable), that is logged as an outage (outageLog), at
// most every reportEvery.
func takeOwnerLock(ctx context.Context, db *sql.DB, logger watermill.LoggerAdapter, checkEvery, reportEvery time.Duration) (*ownerLock, error) {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	o := &ownerLock{db: db, logger: logger, checkEvery: checkEvery, done: make(chan struct{}),
		outage: outageLog{failing: "Cannot take an owner lock; will try again", still: "Still cannot take an owner lock",
			recovered: "Owner lock taken again", unit: "attempts", reportEvery: reportEvery}}
	if err := o.take(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	loopCtx, stop := context.WithCancel(context.Background())
	o.stop = stop
	go o.keep(loopCtx)
	return o, nil
}

// take takes the lock of an owner id on the session of o.db: the one it
// had, if any and still free (its deliveries then keep a live owner), or
// a fresh one.
func (o *ownerLock) take(ctx context.Context) error {
	for i := range 10 {
		id := o.id.Load()
		if i > 0 || id == noOwner {
			id = rand.Int32N(1<<31-1) + 1 // never noOwner
		}
		var got bool
		if err := o.db.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, $2)`, ownerLockClass, id).Scan(&got); err != nil {
			return fmt.Errorf("take owner lock: %w", err)
		}
		if got {
			o.id.Store(id)
			return nil
		}
	}
	return errors.New("take owner lock: ten owner ids in a row were taken")
}

// keep checks every checkEvery that the session still holds the lock,
// and takes it again if it does not (the same id if still free), until
// ctx ends. Until it does, deliveries this backend claimed and whose
// handlers outlive the ack deadline count as abandoned when taken over;
// a server restart or a failover ends the subscriptions' transactions
// too, so what was in flight then comes back as abandoned anyway, and
// runs alone once.
func (o *ownerLock) keep(ctx context.Context) {
	defer close(o.done)
	t := time.NewTicker(o.checkEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var held bool
		// Bounded by the interval, but never under a second: a slow
		// answer on a loaded machine is not a lost lock (the timeout
		// ends the session, and with it the lock).
		checkCtx, cancel := context.WithTimeout(ctx, max(o.checkEvery, time.Second))
		err := o.db.QueryRowContext(checkCtx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
			AND pid = pg_backend_pid() AND classid = $1::int4::oid AND objid = $2::int4::oid AND objsubid = 2 AND granted)`,
			ownerLockClass, o.id.Load()).Scan(&held)
		cancel()
		if err == nil && held || ctx.Err() != nil {
			continue
		}
		if err == nil {
			err = errors.New("the lock is no longer held")
		}
		if !o.outage.inOutage() {
			retry.Warn(o.logger, "Owner lock lost; taking a new one", err, nil)
		}
		if err := o.take(ctx); err != nil {
			if ctx.Err() == nil {
				o.outage.failed(o.logger, err, nil)
			}
			continue
		}
		o.outage.worked(o.logger)
	}
}

// ID is the owner id that claims record.
func (o *ownerLock) ID() int32 { return o.id.Load() }

// ownerID is the owner id the backend's claims record: noOwner for a
// backend that holds no owner lock (MustExist).
func (b *Backend) ownerID() int32 {
	if b.owner == nil {
		return noOwner
	}
	return b.owner.ID()
}

// close releases the lock (with its session) and waits for keep to end.
func (o *ownerLock) close() error {
	o.stop()
	<-o.done
	return o.db.Close()
}
