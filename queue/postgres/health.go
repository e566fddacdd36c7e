package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// WriteHealth reports, without writing, whether this process can write to
// the queue: an error when its last publish or delivery record (every
// delivery is recorded before it is handed out) failed because the server
// would not take the write (writeRefused) within writehealth.FailureWindow
// with none succeeding since; nil otherwise. A readiness check calls it: a
// server whose disk is full, or a standby that a failover left this
// process connected to, answers pings and reads while every publish fails.
func (b *Backend) WriteHealth() error {
	if err := b.health.Err(time.Now()); err != nil {
		return fmt.Errorf("postgres queue: %w", err)
	}
	return nil
}

// writeRefused reports whether err says the server cannot take writes
// now, as opposed to one statement's own failure (a constraint, a bad
// value, a serialization conflict that a retry resolves): out of disk,
// memory or connections (class 53), a system or I/O error (58), a
// read-only transaction (25006: a standby, or default_transaction_read_only),
// a server shutting down or starting (57P01–57P03), a lost connection
// (class 08), or no connection at all. A write cut short by its context
// (a subscriber closing) is none of these, whatever the driver wraps it
// in.
func writeRefused(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "53"), strings.HasPrefix(pgErr.Code, "58"), strings.HasPrefix(pgErr.Code, "08"):
			return true
		}
		switch pgErr.Code {
		case "25006", "57P01", "57P02", "57P03":
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr)
}
