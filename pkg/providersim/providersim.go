// Package providersim keeps the books of a simulated remote provider — the
// payment gateway, the carrier — so that it behaves as the real ones a
// service would call: idempotent per key, and with cancellations that
// reach the provider.
//
// A service calls its provider before its own local transaction (a slow
// provider must hold no database lock), so at-least-once delivery calls
// it again after a crash between the call and the commit, or for a
// redelivered command. Real providers take an idempotency key for this;
// here the key is the order id:
//
//   - Request with a key seen before has no new effect: it returns the
//     first answer (Replays counts the repeats).
//   - Cancel of an accepted request cancels it, once. Cancel of a key never
//     requested leaves a tombstone (OutcomeVoided), so that a request that
//     arrives after its own compensation — a late or redelivered command
//     racing the saga's timeout — is refused instead of taking effect that
//     nobody will undo.
//
// The books live in the service's database (table provider_requests),
// written in transactions of their own, as a remote provider commits
// before it answers: they are never part of the handler's transaction. A
// real provider replaces the adapter that uses this package, and its own
// books replace these. The books are also what the end-to-end tests read
// to prove that no order was charged or shipped twice (GET /gateway on
// payment, GET /carrier on shipping).
package providersim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orderflow/orderflow/pkg/servicedb"
)

// Outcome is what a provider answered to the first request of a key.
type Outcome string

const (
	// OutcomeAccepted: the provider took the request (charged, booked).
	OutcomeAccepted Outcome = "ACCEPTED"
	// OutcomeRefused: the provider declined it; nothing was taken.
	OutcomeRefused Outcome = "REFUSED"
	// OutcomeVoided: the key was cancelled before any request; requests
	// for it are refused.
	OutcomeVoided Outcome = "VOIDED"
)

// Answer is a provider's first answer to a key: its outcome, the
// provider's reference (payment id, shipment id) when accepted, a reason
// when refused, and provider-specific details as JSON.
type Answer struct {
	Outcome   Outcome `json:"outcome"`
	Reference string  `json:"reference,omitempty"`
	Reason    string  `json:"reason,omitempty"`
	Details   string  `json:"details,omitempty"`
}

// Record is a key's line in the books.
type Record struct {
	Provider string `json:"provider"`
	Key      string `json:"key"`
	Answer
	// Cancelled: an accepted request was cancelled (refunded, booking
	// withdrawn).
	Cancelled bool `json:"cancelled"`
	// Requests and Cancels count the calls for this key; the ones after
	// the first had no effect.
	Requests  int       `json:"requests"`
	Cancels   int       `json:"cancels"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Replays is how many requests repeated the first one.
func (r Record) Replays() int { return max(r.Requests-1, 0) }

// Migrate creates the books' table if missing.
func Migrate(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS provider_requests (
		provider   TEXT    NOT NULL,
		key        TEXT    NOT NULL,
		outcome    TEXT    NOT NULL CHECK (outcome IN ('ACCEPTED', 'REFUSED', 'VOIDED')),
		reference  TEXT    NOT NULL,
		reason     TEXT    NOT NULL,
		details    TEXT    NOT NULL,
		cancelled  INTEGER NOT NULL CHECK (cancelled IN (0, 1)),
		requests   INTEGER NOT NULL,
		cancels    INTEGER NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (provider, key)
	)`)
	if err != nil {
		return fmt.Errorf("migrate provider books: %w", err)
	}
	return nil
}

// Books are one provider's books in db (which Migrate prepared).
type Books struct {
	db       *sql.DB
	provider string
	now      func() time.Time
}

// New returns the books of the provider named provider ("gateway",
// "carrier").
func New(db *sql.DB, provider string) (*Books, error) {
	if db == nil || strings.TrimSpace(provider) == "" {
		return nil, errors.New("provider books: database and provider name are required")
	}
	return &Books{db: db, provider: provider, now: time.Now}, nil
}

// ErrNoKey is returned for an empty key: idempotency needs one.
var ErrNoKey = errors.New("provider request without an idempotency key")

// Request runs the provider's side of a request for key: the first time,
// decide says what the provider answers (and the answer is kept); every
// later time, and after a cancellation that came first, the kept answer
// is returned without calling decide. decide runs inside the books'
// transaction, so two concurrent requests for one key take effect once.
// decide must answer OutcomeAccepted or OutcomeRefused.
func (b *Books) Request(ctx context.Context, key string, decide func() Answer) (Record, error) {
	return b.change(ctx, key, func(ctx context.Context, tx *sql.Tx, now int64, rec Record, found bool) (Record, error) {
		if found {
			rec.Requests++
			_, err := tx.ExecContext(ctx, `UPDATE provider_requests SET requests = requests + 1, updated_at = ?
				WHERE provider = ? AND key = ?`, now, b.provider, key)
			return rec, err
		}
		a := decide()
		if a.Outcome != OutcomeAccepted && a.Outcome != OutcomeRefused {
			return rec, fmt.Errorf("provider %s: decide answered %q, want %s or %s", b.provider, a.Outcome, OutcomeAccepted, OutcomeRefused)
		}
		rec = Record{Provider: b.provider, Key: key, Answer: a, Requests: 1, CreatedAt: time.UnixMilli(now), UpdatedAt: time.UnixMilli(now)}
		return rec, insert(ctx, tx, rec)
	})
}

// Cancel runs the provider's side of a cancellation for key: an accepted
// request is cancelled (once); a key never requested gets a tombstone,
// so that a later request is refused with voidedReason; a refused or
// voided key stays as it is. A non-empty reference names what is to be
// cancelled: a cancellation of another reference than the key's (a charge
// of someone else's) has no effect. It returns the record after the call.
func (b *Books) Cancel(ctx context.Context, key, reference, voidedReason string) (Record, error) {
	return b.change(ctx, key, func(ctx context.Context, tx *sql.Tx, now int64, rec Record, found bool) (Record, error) {
		if !found {
			rec = Record{Provider: b.provider, Key: key, Answer: Answer{Outcome: OutcomeVoided, Reason: voidedReason},
				Cancels: 1, CreatedAt: time.UnixMilli(now), UpdatedAt: time.UnixMilli(now)}
			return rec, insert(ctx, tx, rec)
		}
		rec.Cancels++
		if reference != "" && reference != rec.Reference {
			_, err := tx.ExecContext(ctx, `UPDATE provider_requests SET cancels = cancels + 1, updated_at = ?
				WHERE provider = ? AND key = ?`, now, b.provider, key)
			return rec, err
		}
		if rec.Outcome == OutcomeAccepted {
			rec.Cancelled = true
		}
		_, err := tx.ExecContext(ctx, `UPDATE provider_requests
			SET cancels = cancels + 1, cancelled = (outcome = 'ACCEPTED'), updated_at = ?
			WHERE provider = ? AND key = ?`, now, b.provider, key)
		return rec, err
	})
}

// change runs fn on key's record (found false: none yet) in one
// transaction of the books and returns the record fn made of it.
func (b *Books) change(ctx context.Context, key string, fn func(ctx context.Context, tx *sql.Tx, now int64, rec Record, found bool) (Record, error)) (Record, error) {
	if key == "" {
		return Record{}, ErrNoKey
	}
	var rec Record
	err := b.inTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		existing, found, err := b.get(ctx, tx, key)
		if err != nil {
			return err
		}
		rec, err = fn(ctx, tx, now, existing, found)
		return err
	})
	return rec, err
}

// Filter narrows List.
type Filter struct {
	Key string
	// Limit caps the list; 0 means 1000.
	Limit int
}

// List returns the books' records, newest first.
func (b *Books) List(ctx context.Context, f Filter) ([]Record, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	q := `SELECT ` + recordColumns + ` FROM provider_requests WHERE provider = ?`
	args := []any{b.provider}
	if f.Key != "" {
		q += ` AND key = ?`
		args = append(args, f.Key)
	}
	q += ` ORDER BY created_at DESC, key DESC LIMIT ?`
	args = append(args, limit)
	rows, err := b.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s books: %w", b.provider, err)
	}
	defer func() { _ = rows.Close() }()
	recs := []Record{}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s books: %w", b.provider, err)
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s books: %w", b.provider, err)
	}
	return recs, nil
}

// insert adds a key's first line to the books.
func insert(ctx context.Context, tx *sql.Tx, r Record) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO provider_requests (`+recordColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Provider, r.Key, r.Outcome, r.Reference, r.Reason, r.Details, r.Cancelled,
		r.Requests, r.Cancels, r.CreatedAt.UnixMilli(), r.UpdatedAt.UnixMilli())
	return err
}

const recordColumns = `provider, key, outcome, reference, reason, details, cancelled, requests, cancels, created_at, updated_at`

func scanRecord(row interface{ Scan(...any) error }) (Record, error) {
	var (
		r                  Record
		created, updated   int64
		outcome, cancelled = "", 0
	)
	if err := row.Scan(&r.Provider, &r.Key, &outcome, &r.Reference, &r.Reason, &r.Details, &cancelled,
		&r.Requests, &r.Cancels, &created, &updated); err != nil {
		return Record{}, err
	}
	r.Outcome, r.Cancelled = Outcome(outcome), cancelled == 1
	r.CreatedAt, r.UpdatedAt = time.UnixMilli(created), time.UnixMilli(updated)
	return r, nil
}

func (b *Books) get(ctx context.Context, tx *sql.Tx, key string) (Record, bool, error) {
	r, err := scanRecord(tx.QueryRowContext(ctx, `SELECT `+recordColumns+` FROM provider_requests
		WHERE provider = ? AND key = ?`, b.provider, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	return r, true, nil
}

// inTx runs fn in a transaction of the books; fn's statements take the ctx
// it is given (servicedb.InTx's, which does not interrupt them).
func (b *Books) inTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx, now int64) error) error {
	now := b.now().UnixMilli()
	err := servicedb.InTx(ctx, b.db, func(ctx context.Context, tx *sql.Tx) error { return fn(ctx, tx, now) })
	if err != nil {
		return fmt.Errorf("%s books: %w", b.provider, err)
	}
	return nil
}
