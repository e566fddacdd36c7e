package catalog_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/orderflow/orderflow/pkg/catalog"
)

func TestDefaultIsValid(t *testing.T) {
	if err := catalog.Default().Validate(); err != nil {
		t.Fatalf("Default().Validate(): got %v, want nil", err)
	}
	p, err := catalog.Default().Lookup("SKU-1")
	if err != nil || p.UnitPriceCents <= 0 {
		t.Errorf("Lookup(SKU-1): got %+v, %v, want a priced product", p, err)
	}
	if _, err := catalog.Default().Lookup("nope"); !errors.Is(err, catalog.ErrUnknownSKU) {
		t.Errorf("Lookup(nope): got %v, want ErrUnknownSKU", err)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, json string
		wantErr    bool
	}{
		{"valid", `[{"sku":"A","name":"a","unit_price_cents":1,"initial_stock":2}]`, false},
		{"empty", `[]`, true},
		{"repeated sku", `[{"sku":"A","name":"a","unit_price_cents":1,"initial_stock":2},{"sku":"A","name":"b","unit_price_cents":1,"initial_stock":2}]`, true},
		{"negative stock", `[{"sku":"A","name":"a","unit_price_cents":1,"initial_stock":-1}]`, true},
		{"not json", `{`, true},
		{"a field it does not know (a typo)", `[{"sku":"A","name":"a","unitPriceCents":700,"initial_stock":2}]`, true},
		{"no price", `[{"sku":"A","name":"a","initial_stock":2}]`, true},
		{"no stock", `[{"sku":"A","name":"a","unit_price_cents":1}]`, true},
		{"price null (decodes as 0)", `[{"sku":"A","name":"a","unit_price_cents":null,"initial_stock":2}]`, true},
		{"stock null (decodes as 0)", `[{"sku":"A","name":"a","unit_price_cents":1,"initial_stock": null}]`, true},
		{"free and out of stock, said so", `[{"sku":"A","name":"a","unit_price_cents":0,"initial_stock":0}]`, false},
		{"data after the array", `[{"sku":"A","name":"a","unit_price_cents":1,"initial_stock":2}] []`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := catalog.Parse([]byte(tc.json))
			if got := err != nil; got != tc.wantErr {
				t.Errorf("Parse: got error %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	c, err := catalog.Load("")
	if err != nil || len(c) != len(catalog.Default()) {
		t.Fatalf("Load(\"\"): got %d products, %v, want the default", len(c), err)
	}
	path := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(path, []byte(`[{"sku":"X","name":"x","unit_price_cents":5,"initial_stock":3}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = catalog.Load(path)
	if err != nil || len(c) != 1 || c[0].InitialStock != 3 {
		t.Errorf("Load(file): got %+v, %v, want one product with stock 3", c, err)
	}
	if _, err := catalog.Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load(missing): got nil error, want one")
	}
}
