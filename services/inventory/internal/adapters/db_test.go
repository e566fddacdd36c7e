package adapters_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/services/inventory/internal/adapters"
)

// On an existing database the catalogue stocks only new SKUs: a known SKU
// keeps its stock whatever initial_stock says, and a SKU the catalogue
// dropped stays; Migrate says which went which way.
func TestMigrateSeedsOnlyNewSKUsAndSaysSo(t *testing.T) {
	ctx := context.Background()
	db, err := servicedb.Open(ctx, filepath.Join(t.TempDir(), "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	tests := []struct {
		name          string
		catalogue     catalog.Catalog
		want          adapters.Seeding
		wantAvailable map[string]int
	}{
		{
			name: "empty database",
			catalogue: catalog.Catalog{
				{SKU: "A", Name: "a", UnitPriceCents: 100, InitialStock: 5},
				{SKU: "B", Name: "b", UnitPriceCents: 100, InitialStock: 6},
			},
			want:          adapters.Seeding{Stocked: []string{"A", "B"}},
			wantAvailable: map[string]int{"A": 5, "B": 6},
		},
		{
			name: "changed catalogue",
			catalogue: catalog.Catalog{
				{SKU: "C", Name: "c", UnitPriceCents: 100, InitialStock: 7},
				{SKU: "A", Name: "a2", UnitPriceCents: 200, InitialStock: 99},
			},
			want:          adapters.Seeding{Stocked: []string{"C"}, Kept: []string{"A"}, NotInCatalogue: []string{"B"}},
			wantAvailable: map[string]int{"A": 5, "B": 6, "C": 7},
		},
	}
	for _, tc := range tests {
		got, err := adapters.Migrate(ctx, db, tc.catalogue)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
		available := map[string]int{}
		rows, err := db.QueryContext(ctx, `SELECT sku, available FROM stock`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var sku string
			var n int
			if err := rows.Scan(&sku, &n); err != nil {
				t.Fatal(err)
			}
			available[sku] = n
		}
		rows.Close()
		if !reflect.DeepEqual(available, tc.wantAvailable) {
			t.Errorf("%s: available got %v, want %v", tc.name, available, tc.wantAvailable)
		}
	}
}

// Keyed restocks that an earlier release kept only as inbox ids are
// copied into restock_keys, so that their retry after the upgrade is a
// replay; ids that are no restock's, or that cannot be read, are left.
func TestMigrateCopiesRestockKeysOfTheInbox(t *testing.T) {
	ctx := context.Background()
	db, err := servicedb.Open(ctx, filepath.Join(t.TempDir(), "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	// The inbox of an earlier release (queue/inbox's table).
	if _, err := db.ExecContext(ctx, `CREATE TABLE inbox_processed (
		consumer_group TEXT NOT NULL, message_id TEXT NOT NULL, processed_at INTEGER NOT NULL,
		PRIMARY KEY (consumer_group, message_id))`); err != nil {
		t.Fatal(err)
	}
	cat := catalog.Catalog{
		{SKU: "SKU-1", Name: "a", UnitPriceCents: 100, InitialStock: 5},
		{SKU: "SKU-2", Name: "b", UnitPriceCents: 100, InitialStock: 5},
		{SKU: "A", Name: "c", UnitPriceCents: 100, InitialStock: 5},
		{SKU: "A 1", Name: "d", UnitPriceCents: 100, InitialStock: 5}, // blanks in a SKU
	}
	if _, err := adapters.Migrate(ctx, db, cat); err != nil { // the earlier release's stock
		t.Fatal(err)
	}
	for id, at := range map[string]int64{
		"restock SKU-1 5 console-7f3a":         1700000000000,
		"restock SKU-2 3 a key with blanks":    1700000000000,
		"restock A 1 3 k-2":                    1700000000000,
		"restock SKU-1 2 k-3":                  1700000000000, // one key, two restocks: the newer kept
		"restock SKU-2 4 k-3":                  1700000000001,
		"restock SKU-3 1 k-4":                  1700000000000, // a SKU inventory no longer holds
		"restock SKU-1 many k-1":               1700000000000,
		"0199a0c2-5f0e-7c6e-9b1a-3d2f1e0a9b8c": 1700000000000, // a message id
	} {
		if _, err := db.ExecContext(ctx, `INSERT INTO inbox_processed VALUES ('inventory', ?, ?)`, id, at); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // a second start changes nothing
		if _, err := adapters.Migrate(ctx, db, cat); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT key, sku, quantity, created_at FROM restock_keys ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var key, sku string
		var quantity int
		var at int64
		if err := rows.Scan(&key, &sku, &quantity, &at); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s: %s %d at %d", key, sku, quantity, at))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"a key with blanks: SKU-2 3 at 1700000000000",
		"console-7f3a: SKU-1 5 at 1700000000000",
		"k-2: A 1 3 at 1700000000000",
		"k-3: SKU-2 4 at 1700000000001",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("restock keys: got %q, want %q", got, want)
	}
}
