package adapters

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderflow/orderflow/services/order/internal/app"
)

// The unique constraint is the last line of the optimistic concurrency
// check: a duplicate (stream_id, version) must be recognised as a conflict,
// and nothing else must be.
func TestIsUniqueViolation(t *testing.T) {
	db, err := OpenDB(context.Background(), filepath.Join(t.TempDir(), "order.db"), DBConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	insert := `INSERT INTO events (stream_id, version, type, data, metadata, recorded_at) VALUES ('s', ?, 'T', '{}', '{}', 0)`
	if _, err := db.Writer.Exec(insert, 1); err != nil {
		t.Fatal(err)
	}
	_, dup := db.Writer.Exec(insert, 1)
	_, check := db.Writer.Exec(insert, 0) // CHECK (version > 0)
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"duplicate version", dup, true},
		{"check constraint", check, false},
		{"other error", errors.New("boom"), false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		if got := isUniqueViolation(tc.err); got != tc.want {
			t.Errorf("%s (%v): got %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestCeilMilli(t *testing.T) {
	base := time.UnixMilli(1_000).UTC()
	tests := []struct {
		in   time.Time
		want int64
	}{
		{base, 1_000},
		{base.Add(time.Nanosecond), 1_001},
		{base.Add(999 * time.Microsecond), 1_001},
	}
	for _, tc := range tests {
		if got := ceilMilli(tc.in); got != tc.want {
			t.Errorf("ceilMilli(%v): got %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := cursor{placedAt: 1234, orderID: "0190-abc|x"}
	got, err := decodeCursor(c.encode())
	if err != nil || got != c {
		t.Errorf("decode(encode(%+v)): got %+v, %v", c, got, err)
	}
	for _, bad := range []string{"!!", "bm9waXBl", "MTIzNA"} {
		if _, err := decodeCursor(bad); !errors.Is(err, app.ErrInvalidCursor) {
			t.Errorf("decodeCursor(%q): got %v, want ErrInvalidCursor", bad, err)
		}
	}
}
