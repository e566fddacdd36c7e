package adapters

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/queue/tracing"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// Store is the order service's storage: it runs the application's
// transactions (app.Transactor), finds due deadlines (app.DeadlineIndex),
// answers queries (app.ReadModel) and rebuilds the projections they read
// (app.ProjectionRebuilder). Its methods return a database that cannot be
// used now (full, failing, locked, out of file descriptors) as an error
// matching app.ErrStorageUnavailable (see storageErr).
type Store struct {
	db     *DB
	outbox *outbox.Outbox
	inbox  *inbox.Inbox
	events EventStore
	// propagator writes the trace context into emitted messages.
	propagator propagation.TextMapPropagator
	// streams keeps the events of orders in progress decoded.
	streams *streamCache
	// BeforeInboxCommit, when set, runs after the work of an inbox
	// transaction succeeded and before it commits (the crash-mid-handler
	// fault point). Set it before use.
	BeforeInboxCommit func(ctx context.Context)
}

var (
	_ app.Transactor          = (*Store)(nil)
	_ app.DeadlineIndex       = (*Store)(nil)
	_ app.ReadModel           = (*Store)(nil)
	_ app.ProjectionRebuilder = (*Store)(nil)
)

// NewStore returns a Store on db whose transactions write outgoing messages
// to ob, with the trace context written by prop (nil:
// tracing.DefaultPropagator), and record processed messages in ib; ob and
// ib must use db.Writer.
func NewStore(db *DB, ob *outbox.Outbox, ib *inbox.Inbox, prop propagation.TextMapPropagator) (*Store, error) {
	if db == nil || ob == nil || ib == nil {
		return nil, errors.New("new store: database, outbox and inbox are required")
	}
	if prop == nil {
		prop = tracing.DefaultPropagator()
	}
	return &Store{db: db, outbox: ob, inbox: ib, propagator: prop, streams: newStreamCache(DefaultStreamCacheSize)}, nil
}

// InTx runs fn in a transaction of the writer that it shares with the
// inbox's (Inbox.Do): concurrent requests and the replies being handled
// commit together, fn rolled back alone when it fails. fn's work is
// committed when InTx returns nil.
func (s *Store) InTx(ctx context.Context, fn app.TxFunc) error {
	var t *storeTx
	err := s.inbox.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		t = &storeTx{s: s, tx: s.db.stmts.in(tx)}
		return fn(ctx, t)
	})
	t.forgetIfFailed(err)
	return storageErr(err)
}

// WriteHealth reports, without writing, whether the order database takes
// writes: an error when its last transaction (InTx and InInbox run theirs
// in the inbox's) failed within writehealth.FailureWindow with none
// committed since (inbox.Inbox.WriteHealth); nil otherwise. A readiness
// check calls it.
func (s *Store) WriteHealth() error {
	if err := s.inbox.WriteHealth(); err != nil {
		return fmt.Errorf("order %w", err)
	}
	return nil
}

// InInbox runs fn in the inbox's transaction for (group, messageID).
func (s *Store) InInbox(ctx context.Context, group, messageID string, fn app.TxFunc) (bool, error) {
	var t *storeTx
	dup, err := s.inbox.Handle(ctx, group, messageID, func(ctx context.Context, tx *sql.Tx) error {
		t = &storeTx{s: s, tx: s.db.stmts.in(tx)}
		if err := fn(ctx, t); err != nil {
			return err
		}
		if s.BeforeInboxCommit != nil {
			s.BeforeInboxCommit(ctx)
		}
		return nil
	})
	t.forgetIfFailed(err)
	return dup, storageErr(err)
}

// storeTx is app.Tx on one *sql.Tx.
type storeTx struct {
	s  *Store
	tx cachedTx
	// loaded is the version LoadOrder found each stream at in tx.
	loaded map[string]int
	// cached are the streams this transaction put in the stream cache:
	// what it read in the shared transaction may include other units'
	// work, and what it appended its own, none of it committed yet.
	cached []string
}

// forgetIfFailed drops the streams t cached when err says its work was
// not committed (t nil: its function never ran). The cache's version
// check would catch such an entry in this process; another process on
// the same file (a replica) could commit other events at that version.
func (t *storeTx) forgetIfFailed(err error) {
	if t == nil || err == nil {
		return
	}
	for _, id := range t.cached {
		t.s.streams.drop(id)
	}
}

func (t *storeTx) LoadOrder(ctx context.Context, id string) (*domain.Order, error) {
	events, err := t.streamEvents(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: %s", app.ErrOrderNotFound, id)
	}
	o, err := domain.Rehydrate(events)
	if err != nil {
		t.s.streams.drop(id)
		return nil, fmt.Errorf("rehydrate %s: %w", id, err)
	}
	if t.loaded == nil {
		t.loaded = make(map[string]int, 1)
	}
	t.loaded[id] = o.Version()
	if o.Status().IsTerminal() {
		t.s.streams.drop(id) // a late reply to an ended order: no more to come
	}
	return o, nil
}

// LatestMetadata returns the metadata of the stream's latest event.
func (t *storeTx) LatestMetadata(ctx context.Context, id string) (app.EventMetadata, error) {
	var raw string
	err := t.tx.QueryRowContext(ctx, qLatestMeta, id).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return app.EventMetadata{}, fmt.Errorf("%w: %s", app.ErrOrderNotFound, id)
	}
	if err != nil {
		return app.EventMetadata{}, fmt.Errorf("latest metadata of %s: %w", id, err)
	}
	var meta app.EventMetadata
	if err := json.Unmarshal([]byte(raw), &meta); err != nil {
		return app.EventMetadata{}, fmt.Errorf("latest metadata of %s: %w", id, err)
	}
	return meta, nil
}

// streamEvents returns the events of stream id: the cached ones if the
// stream is at their version in this transaction, else those read from the
// table (and cached).
func (t *storeTx) streamEvents(ctx context.Context, id string) ([]domain.Event, error) {
	if cached, ok := t.s.streams.get(id); ok {
		var version int
		if err := t.tx.QueryRowContext(ctx, qStreamVersion, id).Scan(&version); err != nil {
			return nil, fmt.Errorf("load %s: read version: %w", id, err)
		}
		if version == cached.version {
			return cached.events, nil
		}
	}
	events, err := t.s.events.loadEvents(ctx, t.tx, id)
	if err != nil {
		return nil, err
	}
	if len(events) > 0 {
		// Versions run 1, 2, … without gaps (Append).
		t.s.streams.put(id, cachedStream{version: len(events), events: events})
		t.cached = append(t.cached, id)
	}
	return events, nil
}

func (t *storeTx) SaveOrder(ctx context.Context, o *domain.Order, meta app.EventMetadata, at time.Time) error {
	pending := o.PendingEvents()
	if len(pending) == 0 {
		return nil
	}
	expected := o.Version()
	appendEvents := t.s.events.Append
	if v, ok := t.loaded[o.ID()]; ok && v == expected {
		appendEvents = t.s.events.appendAt // read at expected in this transaction
	}
	recs, err := appendEvents(ctx, t.tx, o.ID(), expected, pending, meta, at)
	if err != nil {
		t.s.streams.drop(o.ID())
		return err
	}
	t.cacheAppended(o, expected, pending)
	delete(t.loaded, o.ID()) // at expected+len(pending) now; a second save reads it
	if err := project(ctx, t.tx, o, recs); err != nil {
		return err
	}
	if err := setDeadline(ctx, t.tx, o, meta); err != nil {
		return err
	}
	o.ClearPending()
	return nil
}

// cacheAppended extends the cached stream of o by the events just appended
// at versions expected+1, …, or drops it: when the order ended, or when
// the cache does not hold the stream at expected.
func (t *storeTx) cacheAppended(o *domain.Order, expected int, appended []domain.Event) {
	id := o.ID()
	if o.Status().IsTerminal() {
		t.s.streams.drop(id)
		return
	}
	var before []domain.Event
	if expected > 0 {
		cached, ok := t.s.streams.get(id)
		if !ok || cached.version != expected {
			t.s.streams.drop(id)
			return
		}
		before = cached.events
	}
	t.cached = append(t.cached, id)
	t.s.streams.put(id, cachedStream{
		version: expected + len(appended),
		events:  slices.Concat(before, appended),
	})
}

// Emit encodes m as servicedb.NewMessage does for every service (a new
// id, the contract metadata, the causation id, the trace context of ctx
// written by the store's propagator) and stores it in the outbox, for m's
// topic.
func (t *storeTx) Emit(ctx context.Context, m contracts.Message, causationID string) error {
	msg, err := servicedb.NewMessage(ctx, m, causationID, t.s.propagator)
	if err != nil {
		return err
	}
	return t.s.outbox.Store(ctx, t.tx.tx, m.Topic(), msg)
}

func (t *storeTx) IdempotencyKey(ctx context.Context, key string) (app.IdempotencyRecord, bool, error) {
	rec := app.IdempotencyRecord{Key: key}
	var created int64
	err := t.tx.QueryRowContext(ctx, qIdempotencyGet, key).
		Scan(&rec.RequestHash, &rec.OrderID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return app.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return app.IdempotencyRecord{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	rec.CreatedAt = time.UnixMilli(created).UTC()
	return rec, true, nil
}

func (t *storeTx) OpenOrders(ctx context.Context) (int64, error) {
	var n int64
	err := t.tx.QueryRowContext(ctx, qOpenOrders,
		string(domain.StatusCompleted), string(domain.StatusCancelled), string(domain.StatusRejected)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count open orders: %w", err)
	}
	return n, nil
}

func (t *storeTx) OrderView(ctx context.Context, id string) (app.OrderView, error) {
	return readView(ctx, t.tx, id)
}

func (t *storeTx) SaveIdempotencyKey(ctx context.Context, rec app.IdempotencyRecord) error {
	_, err := t.tx.ExecContext(ctx, qIdempotencyPut,
		rec.Key, rec.RequestHash, rec.OrderID, rec.CreatedAt.UnixMilli())
	if isUniqueViolation(err) {
		// A concurrent request with the same key won: retrying finds its
		// record.
		return fmt.Errorf("save idempotency key: %w", app.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("save idempotency key: %w", err)
	}
	return nil
}

// purgeBatchSize caps the rows one purge statement deletes, so that the
// write lock is held briefly (as the inbox's retention does).
const purgeBatchSize = 1000

// PurgeIdempotencyKeysBefore deletes the Idempotency-Keys created before t
// and says how many it deleted. A request repeating a purged key places a
// new order.
func (s *Store) PurgeIdempotencyKeysBefore(ctx context.Context, t time.Time) (_ int64, err error) {
	defer func() { err = storageErr(err) }()
	var total int64
	for {
		res, err := s.db.Writer.ExecContext(ctx,
			`DELETE FROM idempotency_keys WHERE rowid IN (
				SELECT rowid FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?)`,
			t.UnixMilli(), purgeBatchSize)
		if err != nil {
			return total, fmt.Errorf("purge idempotency keys: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("purge idempotency keys: %w", err)
		}
		total += n
		if n < purgeBatchSize {
			return total, nil
		}
	}
}

// DueDeadlines returns up to limit deadlines due at or before now that
// come after the position after, by due time and then order id.
func (s *Store) DueDeadlines(ctx context.Context, now time.Time, after app.DeadlinePosition, limit int) (_ []app.Deadline, err error) {
	defer func() { err = storageErr(err) }()
	rows, err := s.db.Reader.QueryContext(ctx, qDueDeadlines,
		now.UnixMilli(), after.Due.UnixMilli(), after.OrderID, limit)
	if err != nil {
		return nil, fmt.Errorf("due deadlines: %w", err)
	}
	defer rows.Close()
	var out []app.Deadline
	for rows.Next() {
		var (
			d   app.Deadline
			due int64
		)
		if err := rows.Scan(&d.OrderID, &due, &d.TraceID, &d.SpanID, &d.TraceFlags); err != nil {
			return nil, fmt.Errorf("due deadlines: %w", err)
		}
		d.Due = time.UnixMilli(due).UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("due deadlines: %w", err)
	}
	return out, nil
}

// Order returns one order's view.
func (s *Store) Order(ctx context.Context, id string) (_ app.OrderView, err error) {
	defer func() { err = storageErr(err) }()
	return readView(ctx, s.db.Reader, id)
}

// readView reads the order_view row of order id: from a reader, or in a
// transaction of the writer.
func readView(ctx context.Context, q txQuerier, id string) (app.OrderView, error) {
	v, err := scanView(q.QueryRowContext(ctx, qOrderView, id))
	if errors.Is(err, sql.ErrNoRows) {
		return app.OrderView{}, fmt.Errorf("%w: %s", app.ErrOrderNotFound, id)
	}
	if err != nil {
		return app.OrderView{}, fmt.Errorf("read order %s: %w", id, err)
	}
	return v, nil
}

// Orders returns one page of the order list, newest first.
func (s *Store) Orders(ctx context.Context, f app.ListFilter) (_ app.OrderPage, err error) {
	defer func() { err = storageErr(err) }()
	if f.Limit <= 0 {
		return app.OrderPage{}, errors.New("list orders: limit must be positive")
	}
	q := `SELECT ` + viewColumns + ` FROM order_view WHERE 1 = 1`
	var args []any
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	if !f.PlacedSince.IsZero() {
		q += ` AND placed_at >= ?`
		args = append(args, ceilMilli(f.PlacedSince)) // no order placed before it
	}
	if f.Cursor != "" {
		c, err := decodeCursor(f.Cursor)
		if err != nil {
			return app.OrderPage{}, err
		}
		q += ` AND (placed_at, order_id) < (?, ?)`
		args = append(args, c.placedAt, c.orderID)
	}
	q += ` ORDER BY placed_at DESC, order_id DESC LIMIT ?`
	args = append(args, f.Limit+1)
	rows, err := s.db.Reader.QueryContext(ctx, q, args...)
	if err != nil {
		return app.OrderPage{}, fmt.Errorf("list orders: %w", err)
	}
	defer rows.Close()
	page := app.OrderPage{Orders: []app.OrderView{}}
	for rows.Next() {
		v, err := scanView(rows)
		if err != nil {
			return app.OrderPage{}, fmt.Errorf("list orders: %w", err)
		}
		page.Orders = append(page.Orders, v)
	}
	if err := rows.Err(); err != nil {
		return app.OrderPage{}, fmt.Errorf("list orders: %w", err)
	}
	if len(page.Orders) > f.Limit {
		page.Orders = page.Orders[:f.Limit]
		last := page.Orders[f.Limit-1]
		page.NextCursor = cursor{placedAt: last.PlacedAt.UnixMilli(), orderID: last.ID}.encode()
	}
	return page, nil
}

// Events returns the order's stream, oldest first.
func (s *Store) Events(ctx context.Context, id string) ([]app.EventRecord, error) {
	recs, _, err := s.events.Load(ctx, s.db.Reader, id)
	return recs, storageErr(err)
}

// StatusCounts returns the status counts projection.
func (s *Store) StatusCounts(ctx context.Context) (_ map[domain.Status]int64, err error) {
	defer func() { err = storageErr(err) }()
	rows, err := s.db.Reader.QueryContext(ctx, `SELECT status, count FROM order_status_counts`)
	if err != nil {
		return nil, fmt.Errorf("status counts: %w", err)
	}
	defer rows.Close()
	out := map[domain.Status]int64{}
	for rows.Next() {
		var (
			st string
			n  int64
		)
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("status counts: %w", err)
		}
		out[domain.Status(st)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("status counts: %w", err)
	}
	return out, nil
}

// EmitPoison stores one unreadable message (servicedb.PoisonMessage) for
// topic in the outbox, in its own transaction, for the poison fault: its
// consumers must dead-letter it. typ is the message type it claims to be.
func (s *Store) EmitPoison(ctx context.Context, topic, typ string) (string, error) {
	return servicedb.EmitPoison(ctx, s.db.Writer, s.outbox, topic, typ)
}
