// Package catalog is the canonical product list of orderflow: SKU, name,
// unit price and the stock inventory seeds by default. The order service
// prices orders from it and the inventory service seeds its stock from it,
// so both agree without talking to each other.
//
// The package depends on the standard library only.
package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Currency is the ISO 4217 code of every price in the default catalogue.
const Currency = "EUR"

// Product is one catalogue entry.
type Product struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	UnitPriceCents int64  `json:"unit_price_cents"`
	// InitialStock is what inventory holds when it seeds an empty database.
	InitialStock int `json:"initial_stock"`
}

// Catalog is a list of products with distinct SKUs.
type Catalog []Product

// Default returns the built-in catalogue (a fresh copy each call).
func Default() Catalog {
	return Catalog{
		{SKU: "SKU-1", Name: "Espresso beans, 1 kg", UnitPriceCents: 1500, InitialStock: 1000},
		{SKU: "SKU-2", Name: "Burr grinder", UnitPriceCents: 8999, InitialStock: 200},
		{SKU: "SKU-3", Name: "Milk jug, 350 ml", UnitPriceCents: 1299, InitialStock: 500},
		{SKU: "SKU-4", Name: "Tamper, 58 mm", UnitPriceCents: 2499, InitialStock: 300},
		{SKU: "SKU-5", Name: "Limited-edition cup", UnitPriceCents: 1999, InitialStock: 10},
	}
}

// ErrUnknownSKU is returned by Lookup for a SKU the catalogue lacks.
var ErrUnknownSKU = errors.New("unknown sku")

// Lookup returns the product with sku.
func (c Catalog) Lookup(sku string) (Product, error) {
	for _, p := range c {
		if p.SKU == sku {
			return p, nil
		}
	}
	return Product{}, fmt.Errorf("%w %q", ErrUnknownSKU, sku)
}

// Validate reports empty or repeated SKUs, empty names, negative prices or
// stock.
func (c Catalog) Validate() error {
	var errs []error
	if len(c) == 0 {
		errs = append(errs, errors.New("catalogue is empty"))
	}
	seen := map[string]bool{}
	for i, p := range c {
		if strings.TrimSpace(p.SKU) == "" {
			errs = append(errs, fmt.Errorf("product %d: sku is required", i))
		}
		if seen[p.SKU] {
			errs = append(errs, fmt.Errorf("product %d: sku %q repeats", i, p.SKU))
		}
		seen[p.SKU] = true
		if strings.TrimSpace(p.Name) == "" {
			errs = append(errs, fmt.Errorf("product %d (%s): name is required", i, p.SKU))
		}
		if p.UnitPriceCents < 0 {
			errs = append(errs, fmt.Errorf("product %d (%s): unit_price_cents must not be negative", i, p.SKU))
		}
		if p.InitialStock < 0 {
			errs = append(errs, fmt.Errorf("product %d (%s): initial_stock must not be negative", i, p.SKU))
		}
	}
	return errors.Join(errs...)
}

// Parse reads a catalogue from JSON: an array of products such as
// [{"sku":"SKU-1","name":"Beans","unit_price_cents":1500,"initial_stock":100}].
// A field it does not know (a typo such as "unitPriceCents") and a product
// without unit_price_cents or initial_stock are errors: either would
// otherwise read as 0, and the service start with a free or empty product.
func Parse(data []byte) (Catalog, error) {
	var c Catalog
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("parse catalogue: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse catalogue: data after the array")
	}
	var present []map[string]json.RawMessage
	if err := json.Unmarshal(data, &present); err != nil {
		return nil, fmt.Errorf("parse catalogue: %w", err)
	}
	var errs []error
	for i, fields := range present {
		for _, name := range []string{"sku", "name", "unit_price_cents", "initial_stock"} {
			// null decodes as if absent (the zero value): as missing.
			if raw, ok := fields[name]; !ok || bytes.Equal(raw, []byte("null")) {
				errs = append(errs, fmt.Errorf("product %d: %s is missing", i, name))
			}
		}
	}
	if err := errors.Join(append(errs, c.Validate())...); err != nil {
		return nil, fmt.Errorf("parse catalogue: %w", err)
	}
	return c, nil
}

// Load returns the catalogue in JSON file path, or Default when path is
// empty.
func Load(path string) (Catalog, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load catalogue: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
