package contracts_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/orderflow/orderflow/pkg/contracts"
)

// FuzzDecode checks that Decode never panics, that every error it returns is
// a *DecodeError matching ErrUndecodable, and that whatever it accepts
// re-encodes and decodes to the same value.
func FuzzDecode(f *testing.F) {
	for _, s := range samples() {
		payload, meta, err := contracts.Encode(s.msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(meta["type"], meta["schema_version"], meta["correlation_id"], payload)
	}
	f.Add(contracts.TypeReserveStock, "1", "", []byte(`{"order_id":"o","items":[{"sku":"a","quantity":1}],"extra":[1,2]}`))
	f.Add(contracts.TypeReserveStock, "1", "", []byte(`{"ORDER_ID":"o","Items":[{"SKU":"a","QUANTITY":1}],"order_id":"p"}`))
	f.Add(contracts.TypeOrderPlaced, "1", "o", []byte(`{"order_id":"o","customer_id":"c","items":[{"sku":"a","quantity":1}],"amount_cents":1,"currency":"EUR","placed_at":"2025-01-01T00:00:00+05:30"}`))
	f.Add(contracts.TypeOrderRejected, "1", "", []byte(`{"order_id":"o","reason":"r","rejected_at":"0001-01-01T00:30:00+01:00"}`))
	f.Add(contracts.TypeStockReleased, "1", "", []byte(`{"order_id":"o","items":[]}`))
	f.Add(contracts.TypeStockReleased, "1", "", []byte(`{"order_id":"o","items":null}`))
	f.Add(contracts.TypePaymentDeclined, "1", "", []byte("{\"order_id\":\"\xff\",\"reason\":\"\\ud800\"}"))
	f.Add(contracts.TypeChargePayment, "1", "", []byte(`{"order_id":"o","customer_id":"c","amount_cents":1e3,"currency":"EUR"}`))
	f.Add(contracts.TypeReserveStock, "2", "", []byte(`{}`))
	f.Add("", "", "", []byte(nil))
	f.Add("x", "1", "", []byte(`[`))

	f.Fuzz(func(t *testing.T, typ, version, correlationID string, payload []byte) {
		meta := map[string]string{contracts.MetadataType: typ, contracts.MetadataSchemaVersion: version}
		if correlationID != "" {
			meta[contracts.MetadataCorrelationID] = correlationID
		}
		m, err := contracts.Decode(meta, payload)
		if err != nil {
			var de *contracts.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, contracts.ErrUndecodable) {
				t.Fatalf("Decode: got error %v (%T), want a *DecodeError matching ErrUndecodable", err, err)
			}
			return
		}
		if got := m.MessageType(); got != typ {
			t.Fatalf("MessageType(): got %q, want %q", got, typ)
		}
		payload2, meta2, err := contracts.Encode(m)
		if err != nil {
			t.Fatalf("Encode(%#v): got error %v, want nil", m, err)
		}
		m2, err := contracts.Decode(meta2, payload2)
		if err != nil {
			t.Fatalf("Decode(Encode(%#v)): got error %v, want nil", m, err)
		}
		if !reflect.DeepEqual(m2, m) {
			t.Fatalf("round trip: got %#v, want %#v", m2, m)
		}
	})
}
