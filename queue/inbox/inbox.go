// Package inbox makes a consumer idempotent: the local transaction that
// applies a message's effects also records the message id, so a redelivered
// message is recognised and acked without repeating its effects. Over an
// at-least-once queue this gives effectively-once processing.
//
// Ids are recorded in table inbox_processed of the service's own SQLite
// file, keyed by (consumer_group, message_id). Open the file as the outbox
// package describes (WAL, _busy_timeout, _txlock=immediate, one connection
// for writers): Handle's transaction then holds the write lock from BEGIN,
// so concurrent deliveries of one id are serialised and the second sees the
// first's record. With a larger pool the primary key still guarantees that
// at most one of them commits.
package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// Config configures an Inbox. Zero values take the defaults.
type Config struct {
	// Retention is how long processed ids are kept; RunRetention deletes
	// older ones. Zero keeps them forever. Trade-off: a message
	// redelivered after its id was deleted is processed again, so keep
	// it well above the longest redelivery delay of the queue (retries,
	// dead-letter replay).
	Retention time.Duration
	// RetentionInterval is how often RunRetention deletes. Defaults to 1m.
	RetentionInterval time.Duration
	// RetentionBatchSize caps the rows one delete statement removes, so
	// the write lock is held briefly. Defaults to 1000.
	RetentionBatchSize int
	// Logger defaults to watermill.NopLogger.
	Logger watermill.LoggerAdapter
}

func (c *Config) setDefaults() {
	if c.RetentionInterval == 0 {
		c.RetentionInterval = time.Minute
	}
	if c.RetentionBatchSize == 0 {
		c.RetentionBatchSize = 1000
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports an unusable config.
func (c Config) Validate() error {
	var errs []error
	if c.Retention < 0 {
		errs = append(errs, errors.New("retention must not be negative"))
	}
	if c.RetentionInterval <= 0 {
		errs = append(errs, errors.New("retention interval must be positive"))
	}
	if c.RetentionBatchSize < 1 {
		errs = append(errs, errors.New("retention batch size must be positive"))
	}
	return errors.Join(errs...)
}

// TxFunc applies a message's effects within the inbox transaction. It must
// do all its work through tx (with one pooled connection, using the
// *sql.DB instead would wait for the connection tx holds).
type TxFunc func(ctx context.Context, tx *sql.Tx) error

// Inbox records processed message ids. It is safe for concurrent use and
// holds no resources of its own: there is nothing to close.
type Inbox struct {
	db     *sql.DB
	cfg    Config
	logger watermill.LoggerAdapter
	// record is prepared once on the DB: Tx.StmtContext then reuses it on
	// each connection, where a query string would be compiled again for
	// every message.
	record *sql.Stmt
}

// New creates table inbox_processed in db if it does not exist.
func New(ctx context.Context, db *sql.DB, cfg Config) (*Inbox, error) {
	if db == nil {
		return nil, errors.New("inbox: db is nil")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("inbox: invalid config: %w", err)
	}
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS inbox_processed (
			consumer_group TEXT    NOT NULL,
			message_id     TEXT    NOT NULL,
			processed_at   INTEGER NOT NULL,
			PRIMARY KEY (consumer_group, message_id)
		)`,
		`CREATE INDEX IF NOT EXISTS inbox_processed_at ON inbox_processed (processed_at)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("inbox: initialize schema: %w", err)
		}
	}
	record, err := db.PrepareContext(ctx, recordQuery)
	if err != nil {
		return nil, fmt.Errorf("inbox: prepare: %w", err)
	}
	return &Inbox{db: db, cfg: cfg, logger: cfg.Logger, record: record}, nil
}

const recordQuery = `INSERT INTO inbox_processed (consumer_group, message_id, processed_at) VALUES (?, ?, ?)
	ON CONFLICT (consumer_group, message_id) DO NOTHING`

// Handle runs fn once per (group, messageID): in one local transaction it
// records the id, runs fn and commits. If the id is already recorded it
// returns duplicate=true without running fn. If fn (or the commit) fails,
// nothing is recorded and the error is returned, so the next delivery runs
// fn again. If fn panics, the transaction is rolled back and the panic
// continues.
//
// ctx is given to fn and cancels the wait for a connection and fn's
// statements; once fn has returned nil the commit runs regardless of ctx.
// processed_at is the time of the commit's start in Unix milliseconds.
func (i *Inbox) Handle(ctx context.Context, group, messageID string, fn TxFunc) (duplicate bool, err error) {
	if group == "" || messageID == "" {
		return false, errors.New("inbox: consumer group and message id are required")
	}
	if fn == nil {
		return false, errors.New("inbox: fn is nil")
	}
	err = i.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, i.record).ExecContext(ctx, group, messageID, time.Now().UnixMilli())
		if err != nil {
			return fmt.Errorf("record message: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("record message: %w", err)
		}
		if n == 0 {
			duplicate = true
			return nil
		}
		return fn(ctx, tx)
	})
	if err != nil {
		return false, fmt.Errorf("inbox: %w", err)
	}
	return duplicate, nil
}

// inTx runs fn in a transaction that is committed if fn returns nil and
// rolled back otherwise. The connection is taken under ctx; the
// transaction is begun without cancellation, so a ctx cancelled after fn
// succeeded cannot roll it back.
func (i *Inbox) inTx(ctx context.Context, fn TxFunc) (err error) {
	conn, err := i.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("get connection: %w", err)
	}
	defer conn.Close()

	tx, err := conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		err = finishTx(err, tx, recover())
	}()
	return fn(ctx, tx)
}

// finishTx commits tx when fn succeeded, and otherwise rolls it back and
// returns fn's error; a recovered panic is re-raised after the rollback.
func finishTx(err error, tx *sql.Tx, panicked any) error {
	if panicked != nil {
		_ = tx.Rollback()
		panic(panicked)
	}
	if err != nil {
		if rbErr := tx.Rollback(); rbErr != nil {
			return errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// PurgeProcessedBefore deletes the ids processed before t, in statements
// of at most RetentionBatchSize rows, and says how many it deleted.
func (i *Inbox) PurgeProcessedBefore(ctx context.Context, t time.Time) (int64, error) {
	var total int64
	for {
		res, err := i.db.ExecContext(ctx,
			`DELETE FROM inbox_processed WHERE rowid IN (
				SELECT rowid FROM inbox_processed WHERE processed_at < ? ORDER BY processed_at LIMIT ?)`,
			t.UnixMilli(), i.cfg.RetentionBatchSize)
		if err != nil {
			return total, fmt.Errorf("inbox: purge processed: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("inbox: purge processed: %w", err)
		}
		total += n
		if n < int64(i.cfg.RetentionBatchSize) {
			return total, nil
		}
	}
}

// RunRetention deletes ids older than Retention every RetentionInterval
// until ctx is cancelled, then returns nil. It returns at once when
// Retention is zero. Failures are logged and retried at the next tick.
func (i *Inbox) RunRetention(ctx context.Context) error {
	if i.cfg.Retention == 0 {
		return nil
	}
	t := time.NewTicker(i.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := i.PurgeProcessedBefore(ctx, time.Now().Add(-i.cfg.Retention))
		if err != nil && ctx.Err() == nil {
			i.logger.Error("Cannot purge processed message ids", err, nil)
			continue
		}
		if n > 0 {
			i.logger.Debug("Purged processed message ids", watermill.LogFields{"deleted": n})
		}
	}
}
