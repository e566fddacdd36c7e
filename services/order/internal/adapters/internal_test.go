package adapters

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/queue/sqlitefile"
	"github.com/orderflow/orderflow/services/order/internal/app"
)

// The order database's writer connections checkpoint as every service
// database's do (servicedb.OpenWriter), not at SQLite's default.
func TestOpenDBWriterPragmas(t *testing.T) {
	db, err := OpenDB(context.Background(), filepath.Join(t.TempDir(), "order.db"), DBConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got int
	if err := db.Writer.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != servicedb.WALAutocheckpointPages {
		t.Errorf("PRAGMA wal_autocheckpoint: got %d, want %d", got, servicedb.WALAutocheckpointPages)
	}
}

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

// DueDeadlines pages by (due time, order id) from after, and reads the
// index in that order: a sort would read every due deadline for each page.
func TestDueDeadlinesPagesInIndexOrder(t *testing.T) {
	ctx := context.Background()
	db, err := OpenDB(ctx, filepath.Join(t.TempDir(), "order.db"), DBConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, d := range []struct {
		id  string
		due int64
	}{{"b", 10}, {"a", 10}, {"c", 5}, {"d", 20}, {"late", 99}} {
		if _, err := db.Writer.Exec(`INSERT INTO order_deadlines (order_id, due_at, trace_id, span_id) VALUES (?, ?, '', '')`, d.id, d.due); err != nil {
			t.Fatal(err)
		}
	}
	s := &Store{db: db}
	now := time.UnixMilli(50)
	var got []string
	var after app.DeadlinePosition
	for {
		page, err := s.DueDeadlines(ctx, now, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			got = append(got, d.OrderID)
		}
		if len(page) < 2 {
			break
		}
		last := page[len(page)-1]
		after = app.DeadlinePosition{Due: last.Due, OrderID: last.OrderID}
	}
	if want := []string{"c", "a", "b", "d"}; !slices.Equal(got, want) {
		t.Errorf("pages: got %v, want %v", got, want)
	}

	rows, err := db.Reader.Query(`EXPLAIN QUERY PLAN `+qDueDeadlines, 0, 0, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, step := range plan {
		if strings.Contains(step, "TEMP B-TREE") {
			t.Errorf("query plan %q sorts (step %q), want the index read in order", plan, step)
		}
	}
}

// A new order database gets the services' page size (sqlitefile.Prepare
// before the first connection), in WAL mode, in a directory made for it.
func TestOpenDBCreatesTheFileWithTheServicePageSize(t *testing.T) {
	db, err := OpenDB(context.Background(), filepath.Join(t.TempDir(), "new", "order.db"), DBConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		pragma string
		want   any
	}{
		{"page_size", int64(sqlitefile.DefaultPageSize)},
		{"journal_mode", "wal"},
	} {
		var got any
		if err := db.Reader.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if s, ok := got.([]byte); ok {
			got = string(s)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s: got %v (%T), want %v", tc.pragma, got, got, tc.want)
		}
	}
}

// A file made before order_deadlines had trace_flags gains the column when
// opened, and its deadlines read back as sampled (empty flags).
func TestOpenAddsTheTraceFlagsColumn(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "order.db")
	old, err := OpenDB(ctx, path, DBConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TABLE order_deadlines`,
		`CREATE TABLE order_deadlines (order_id TEXT PRIMARY KEY, due_at INTEGER NOT NULL, trace_id TEXT NOT NULL, span_id TEXT NOT NULL)`,
		`INSERT INTO order_deadlines VALUES ('o-1', 1000, '0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331')`,
	} {
		if _, err := old.Writer.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	for range 2 { // the second open finds the column and leaves it
		db, err := OpenDB(ctx, path, DBConfig{})
		if err != nil {
			t.Fatalf("open the older file: %v", err)
		}
		due, err := (&Store{db: db}).DueDeadlines(ctx, time.UnixMilli(2000), app.DeadlinePosition{}, 10)
		if err != nil {
			t.Fatalf("due deadlines: %v", err)
		}
		want := []app.Deadline{{OrderID: "o-1", Due: time.UnixMilli(1000).UTC(), TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331"}}
		if !slices.Equal(due, want) {
			t.Errorf("due deadlines: got %+v, want %+v", due, want)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
