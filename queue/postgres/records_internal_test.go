package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue/postgres/pgtest"
)

// TestDeliveryRecordsCommitAsConfigured checks the one place where the
// queue trades durability for speed: delivery records commit without
// waiting for the disk unless SynchronousDeliveryRecords is set, and every
// other write (messages, offsets, dead letters) always waits.
func TestDeliveryRecordsCommitAsConfigured(t *testing.T) {
	dsn := pgtest.SchemaURL(t, "queue_test")
	tests := []struct {
		synchronousRecords bool
		wantRecords        string
	}{
		{synchronousRecords: false, wantRecords: "off"},
		{synchronousRecords: true, wantRecords: "on"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("SynchronousDeliveryRecords=%v", tt.synchronousRecords), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			b, err := Open(ctx, dsn, Config{SynchronousDeliveryRecords: tt.synchronousRecords})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer func() {
				if err := b.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			if got := synchronousCommit(ctx, t, b.recordsDB); got != tt.wantRecords {
				t.Errorf("delivery records commit with synchronous_commit=%s, want %s", got, tt.wantRecords)
			}
			if got := synchronousCommit(ctx, t, b.db); got != "on" {
				t.Errorf("publishing commits with synchronous_commit=%s, want on", got)
			}
			if got := synchronousCommit(ctx, t, b.subDB); got != "on" {
				t.Errorf("offsets commit with synchronous_commit=%s, want on", got)
			}
		})
	}
}

func synchronousCommit(ctx context.Context, t *testing.T, db *sql.DB) string {
	t.Helper()
	var v string
	if err := db.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&v); err != nil {
		t.Fatalf("show synchronous_commit: %v", err)
	}
	return v
}
