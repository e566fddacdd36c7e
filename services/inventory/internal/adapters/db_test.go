package adapters_test

import (
	"context"
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
