package postgres

import (
	"context"
	"testing"

	"github.com/orderflow/orderflow/queue/postgres/pgtest"
)

// openFresh opens a backend with cfg on a schema of its own, closed at
// cleanup.
func openFresh(ctx context.Context, t *testing.T, cfg Config) *Backend {
	t.Helper()
	b, err := Open(ctx, pgtest.SchemaURL(t, "queue_test"), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
