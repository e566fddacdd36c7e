package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
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
// value, a serialization conflict or a statement timeout that a retry may
// resolve): out of disk or memory (53100, 53200; not 53300, too many
// connections, which refuses new connections while pooled ones still
// write), a system or I/O error (class 58), corrupted data (XX001,
// XX002), a read-only transaction (25006: a standby, or
// default_transaction_read_only), a server shutting down or starting
// (57P01–57P03), a lost connection (class 08, or the connection ending
// mid-statement), no connection at all, or no answer in time (the
// writes fed here run on contexts that only time out). A caller that gave
// up (context.Canceled) is not the server refusing.
func writeRefused(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true // whatever it wraps, a timeout included
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "58"), strings.HasPrefix(pgErr.Code, "08"):
			return true
		}
		switch pgErr.Code {
		case "53100", "53200", "XX001", "XX002", "25006", "57P01", "57P02", "57P03":
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF)
}
