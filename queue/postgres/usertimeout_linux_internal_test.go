package postgres

import (
	"context"
	"database/sql"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/sys/unix"
)

// The queue's connections, of both pools, carry TCP_USER_TIMEOUT
// (Config.TCPUserTimeout): a connection cut without a reset while it has
// data in flight is given up after it, not after TCP's retransmissions
// (about 15 minutes).
func TestConnectionsCarryTheTCPUserTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	b := openFresh(ctx, t, Config{TCPUserTimeout: 1234 * time.Millisecond})
	for name, db := range map[string]*sql.DB{"db": b.db, "subDB": b.subDB} {
		if got := userTimeoutOf(ctx, t, db); got != 1234 {
			t.Errorf("%s: TCP_USER_TIMEOUT %dms, want 1234ms", name, got)
		}
	}
	if got := (Config{}); got.TCPUserTimeout != 0 {
		t.Fatal("zero Config has a TCPUserTimeout")
	}
	def := Config{}
	def.setDefaults()
	if def.TCPUserTimeout != 30*time.Second {
		t.Errorf("default TCPUserTimeout %s, want 30s (the keepalives' 15s + 3 × 5s)", def.TCPUserTimeout)
	}
}

// userTimeoutOf reads TCP_USER_TIMEOUT, in ms, off a connection of db.
func userTimeoutOf(ctx context.Context, t *testing.T, db *sql.DB) int {
	t.Helper()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := -1
	if err := conn.Raw(func(dc any) error {
		tcp, ok := dc.(*stdlib.Conn).Conn().PgConn().Conn().(*net.TCPConn)
		if !ok {
			t.Fatalf("got a %T, want a TCP connection (the test server must be reached over TCP)", dc.(*stdlib.Conn).Conn().PgConn().Conn())
		}
		rc, err := tcp.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			got, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		}); err != nil {
			return err
		}
		return serr
	}); err != nil {
		t.Fatal(err)
	}
	return got
}
