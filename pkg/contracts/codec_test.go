package contracts_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/queue/backend"
)

var placedAt = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func items() []contracts.Item {
	return []contracts.Item{{SKU: "SKU-1", Quantity: 2}, {SKU: "SKU-2", Quantity: 1}}
}

func address() contracts.Address {
	return contracts.Address{Name: "Ada Lovelace", Line1: "12 St James's Square", City: "London", PostalCode: "SW1Y 4JH", Country: "GB"}
}

// samples holds one valid value of every contract, with the topic docs/design.md §3
// puts it on.
func samples() []struct {
	msg   contracts.Message
	topic string
} {
	return []struct {
		msg   contracts.Message
		topic string
	}{
		{contracts.ReserveStock{OrderID: "o-1", Items: items()}, "inventory.commands"},
		{contracts.ReleaseStock{OrderID: "o-1", Items: items(), Reason: "payment declined"}, "inventory.commands"},
		{contracts.StockReserved{OrderID: "o-1", Items: items()}, "inventory.events"},
		{contracts.StockReservationFailed{OrderID: "o-1", Reason: "out of stock", Unavailable: []contracts.Item{{SKU: "SKU-2", Quantity: 1}}}, "inventory.events"},
		{contracts.StockReleased{OrderID: "o-1", Items: items()}, "inventory.events"},
		{contracts.ChargePayment{OrderID: "o-1", CustomerID: "c-1", AmountCents: 4999, Currency: "EUR"}, "payment.commands"},
		{contracts.RefundPayment{OrderID: "o-1", PaymentID: "p-1", AmountCents: 4999, Currency: "EUR", Reason: "shipment failed"}, "payment.commands"},
		{contracts.PaymentCharged{OrderID: "o-1", PaymentID: "p-1", AmountCents: 4999, Currency: "EUR"}, "payment.events"},
		{contracts.PaymentDeclined{OrderID: "o-1", Reason: "insufficient funds"}, "payment.events"},
		{contracts.PaymentRefunded{OrderID: "o-1", PaymentID: "p-1", AmountCents: 4999, Currency: "EUR"}, "payment.events"},
		{contracts.ScheduleShipment{OrderID: "o-1", Items: items(), Address: address()}, "shipping.commands"},
		{contracts.CancelShipment{OrderID: "o-1", ShipmentID: "s-1", Reason: "customer cancelled"}, "shipping.commands"},
		{contracts.ShipmentScheduled{OrderID: "o-1", ShipmentID: "s-1", Carrier: "DHL", TrackingNumber: "TRK-1"}, "shipping.events"},
		{contracts.ShipmentFailed{OrderID: "o-1", Reason: "address unreachable"}, "shipping.events"},
		{contracts.ShipmentCancelled{OrderID: "o-1", ShipmentID: "s-1"}, "shipping.events"},
		{contracts.OrderPlaced{OrderID: "o-1", CustomerID: "c-1", Items: items(), AmountCents: 4999, Currency: "EUR", PlacedAt: placedAt}, "order.events"},
		{contracts.OrderCompleted{OrderID: "o-1", PaymentID: "p-1", ShipmentID: "s-1", TrackingNumber: "TRK-1", CompletedAt: placedAt}, "order.events"},
		{contracts.OrderCancelled{OrderID: "o-1", Reason: "customer", CancelledAt: placedAt}, "order.events"},
		{contracts.OrderRejected{OrderID: "o-1", Reason: "out of stock", RejectedAt: placedAt}, "order.events"},
	}
}

func TestRoundTripEveryMessage(t *testing.T) {
	types := map[string]bool{}
	for _, tc := range samples() {
		t.Run(tc.msg.MessageType(), func(t *testing.T) {
			if got := tc.msg.Topic(); got != tc.topic {
				t.Errorf("Topic() = %q, want %q", got, tc.topic)
			}
			if got, want := tc.msg.MessageType(), tc.topic[:strings.IndexByte(tc.topic, '.')]+"."+reflect.TypeOf(tc.msg).Name(); got != want {
				t.Errorf("MessageType() = %q, want %q", got, want)
			}
			payload, meta, err := contracts.Encode(tc.msg)
			if err != nil {
				t.Fatalf("Encode: got error %v, want nil", err)
			}
			wantMeta := map[string]string{"type": tc.msg.MessageType(), "schema_version": "1", "correlation_id": "o-1"}
			if !reflect.DeepEqual(meta, wantMeta) {
				t.Errorf("Encode metadata: got %v, want %v", meta, wantMeta)
			}
			if !strings.Contains(string(payload), `"order_id":"o-1"`) {
				t.Errorf("payload %s: want a snake_case order_id", payload)
			}
			got, err := contracts.Decode(meta, payload)
			if err != nil {
				t.Fatalf("Decode: got error %v, want nil", err)
			}
			if !reflect.DeepEqual(got, tc.msg) {
				t.Errorf("Decode: got %#v, want %#v", got, tc.msg)
			}
		})
		types[tc.msg.MessageType()] = true
	}
	if got, want := len(types), 19; got != want {
		t.Errorf("distinct message types covered: got %d, want %d", got, want)
	}
}

func TestEncodeWritesUTCAndAcceptsPointers(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	in := &contracts.OrderCancelled{OrderID: "o-1", Reason: "customer", CancelledAt: placedAt.In(paris)}
	payload, meta, err := contracts.Encode(in)
	if err != nil {
		t.Fatalf("Encode(pointer): got error %v, want nil", err)
	}
	if !strings.Contains(string(payload), `"cancelled_at":"2025-03-14T15:09:26.535897Z"`) {
		t.Errorf("payload %s: want cancelled_at in UTC", payload)
	}
	got, err := contracts.Decode(meta, payload)
	if err != nil {
		t.Fatalf("Decode: got error %v, want nil", err)
	}
	want := contracts.OrderCancelled{OrderID: "o-1", Reason: "customer", CancelledAt: placedAt}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode: got %#v, want %#v", got, want)
	}

	var nilPtr *contracts.ReserveStock
	if _, _, err := contracts.Encode(nilPtr); !errors.Is(err, contracts.ErrInvalidMessage) {
		t.Errorf("Encode(nil pointer): got %v, want ErrInvalidMessage", err)
	}
	if _, _, err := contracts.Encode(nil); !errors.Is(err, contracts.ErrInvalidMessage) {
		t.Errorf("Encode(nil): got %v, want ErrInvalidMessage", err)
	}
}

func TestEncodeRefusesInvalidMessages(t *testing.T) {
	tests := []struct {
		name    string
		msg     contracts.Message
		problem string
	}{
		{"no order id", contracts.ReserveStock{Items: items()}, "order_id is required"},
		{"blank order id", contracts.PaymentDeclined{OrderID: "  ", Reason: "x"}, "order_id is required"},
		{"no items", contracts.ReserveStock{OrderID: "o-1"}, "items must hold at least one item"},
		{"zero quantity", contracts.ReserveStock{OrderID: "o-1", Items: []contracts.Item{{SKU: "A", Quantity: 0}}}, "items[0].quantity must be positive"},
		{"negative quantity", contracts.StockReserved{OrderID: "o-1", Items: []contracts.Item{{SKU: "A", Quantity: -3}}}, "items[0].quantity must be positive"},
		{"repeated sku", contracts.ReserveStock{OrderID: "o-1", Items: []contracts.Item{{SKU: "A", Quantity: 1}, {SKU: "A", Quantity: 2}}}, `items[1].sku repeats "A"`},
		{"no sku", contracts.ReleaseStock{OrderID: "o-1", Items: []contracts.Item{{Quantity: 1}}}, "items[0].sku is required"},
		{"zero amount", contracts.ChargePayment{OrderID: "o-1", CustomerID: "c", Currency: "EUR"}, "amount_cents must be positive"},
		{"lower-case currency", contracts.ChargePayment{OrderID: "o-1", CustomerID: "c", AmountCents: 1, Currency: "eur"}, "currency must be an ISO 4217 code"},
		{"no payment id", contracts.PaymentCharged{OrderID: "o-1", AmountCents: 1, Currency: "EUR"}, "payment_id is required"},
		{"negative refund", contracts.PaymentRefunded{OrderID: "o-1", AmountCents: -1, Currency: "EUR"}, "amount_cents must not be negative"},
		{"no reason", contracts.ShipmentFailed{OrderID: "o-1"}, "reason is required"},
		{"no tracking number", contracts.ShipmentScheduled{OrderID: "o-1", ShipmentID: "s"}, "tracking_number is required"},
		{"bad country", contracts.ScheduleShipment{OrderID: "o-1", Items: items(), Address: contracts.Address{Name: "n", Line1: "l", City: "c", Country: "FRA"}}, "address.country must be"},
		{"no placed_at", contracts.OrderPlaced{OrderID: "o-1", CustomerID: "c", Items: items(), AmountCents: 1, Currency: "EUR"}, "placed_at is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := contracts.Encode(tc.msg)
			if !errors.Is(err, contracts.ErrInvalidMessage) {
				t.Fatalf("Encode: got %v, want an error wrapping ErrInvalidMessage", err)
			}
			if !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("Encode: got %q, want it to mention %q", err, tc.problem)
			}
		})
	}
}

func meta(typ, version string) map[string]string {
	return map[string]string{"type": typ, "schema_version": version}
}

func TestDecodeFailures(t *testing.T) {
	valid := `{"order_id":"o-1","items":[{"sku":"A","quantity":1}]}`
	tests := []struct {
		name    string
		meta    map[string]string
		payload string
		want    error
	}{
		{"no metadata", nil, valid, contracts.ErrInvalidMetadata},
		{"no type", map[string]string{"schema_version": "1"}, valid, contracts.ErrInvalidMetadata},
		{"no version", map[string]string{"type": contracts.TypeReserveStock}, valid, contracts.ErrInvalidMetadata},
		{"version not a number", meta(contracts.TypeReserveStock, "v1"), valid, contracts.ErrInvalidMetadata},
		{"version with leading zero", meta(contracts.TypeReserveStock, "01"), valid, contracts.ErrInvalidMetadata},
		{"version with sign", meta(contracts.TypeReserveStock, "+1"), valid, contracts.ErrInvalidMetadata},
		{"correlation id differs", map[string]string{"type": contracts.TypeReserveStock, "schema_version": "1", "correlation_id": "o-2"}, valid, contracts.ErrInvalidMetadata},
		{"unknown type", meta("inventory.ReserveStonks", "1"), valid, contracts.ErrUnknownType},
		{"type without namespace", meta("ReserveStock", "1"), valid, contracts.ErrUnknownType},
		{"future version", meta(contracts.TypeReserveStock, "2"), valid, contracts.ErrUnsupportedVersion},
		{"version zero", meta(contracts.TypeReserveStock, "0"), valid, contracts.ErrUnsupportedVersion},
		{"negative version", meta(contracts.TypeReserveStock, "-1"), valid, contracts.ErrUnsupportedVersion},
		{"empty payload", meta(contracts.TypeReserveStock, "1"), ``, contracts.ErrMalformedPayload},
		{"null payload", meta(contracts.TypeReserveStock, "1"), `null`, contracts.ErrMalformedPayload},
		{"array payload", meta(contracts.TypeReserveStock, "1"), `[]`, contracts.ErrMalformedPayload},
		{"truncated json", meta(contracts.TypeReserveStock, "1"), `{"order_id":"o-1","items":[`, contracts.ErrMalformedPayload},
		{"trailing data", meta(contracts.TypeReserveStock, "1"), valid + ` {}`, contracts.ErrMalformedPayload},
		{"quantity as string", meta(contracts.TypeReserveStock, "1"), `{"order_id":"o-1","items":[{"sku":"A","quantity":"1"}]}`, contracts.ErrMalformedPayload},
		{"fractional quantity", meta(contracts.TypeReserveStock, "1"), `{"order_id":"o-1","items":[{"sku":"A","quantity":1.5}]}`, contracts.ErrMalformedPayload},
		{"amount overflows", meta(contracts.TypeChargePayment, "1"), `{"order_id":"o-1","customer_id":"c","amount_cents":9223372036854775808,"currency":"EUR"}`, contracts.ErrMalformedPayload},
		{"bad timestamp", meta(contracts.TypeOrderRejected, "1"), `{"order_id":"o-1","reason":"r","rejected_at":"yesterday"}`, contracts.ErrMalformedPayload},
		{"missing order id", meta(contracts.TypeReserveStock, "1"), `{"items":[{"sku":"A","quantity":1}]}`, contracts.ErrInvalidMessage},
		{"empty object", meta(contracts.TypePaymentDeclined, "1"), `{}`, contracts.ErrInvalidMessage},
		{"missing items", meta(contracts.TypeReserveStock, "1"), `{"order_id":"o-1"}`, contracts.ErrInvalidMessage},
		{"null items", meta(contracts.TypeReserveStock, "1"), `{"order_id":"o-1","items":null}`, contracts.ErrInvalidMessage},
		{"zero quantity", meta(contracts.TypeReserveStock, "1"), `{"order_id":"o-1","items":[{"sku":"A","quantity":0}]}`, contracts.ErrInvalidMessage},
		{"payload of another type", meta(contracts.TypePaymentCharged, "1"), valid, contracts.ErrInvalidMessage},
		{"year beyond 9999 in UTC", meta(contracts.TypeOrderRejected, "1"), `{"order_id":"o-1","reason":"r","rejected_at":"9999-12-31T23:00:00-02:00"}`, contracts.ErrInvalidMessage},
	}
	classes := []error{contracts.ErrInvalidMetadata, contracts.ErrUnknownType, contracts.ErrUnsupportedVersion, contracts.ErrMalformedPayload, contracts.ErrInvalidMessage}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := contracts.Decode(tc.meta, []byte(tc.payload))
			if m != nil {
				t.Errorf("Decode: got message %#v, want nil", m)
			}
			if !errors.Is(err, contracts.ErrUndecodable) {
				t.Fatalf("Decode: got error %v, want one matching ErrUndecodable", err)
			}
			var de *contracts.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode: got error of type %T, want *DecodeError", err)
			}
			if de.Type != tc.meta["type"] || de.SchemaVersion != tc.meta["schema_version"] {
				t.Errorf("DecodeError metadata: got (%q, %q), want (%q, %q)", de.Type, de.SchemaVersion, tc.meta["type"], tc.meta["schema_version"])
			}
			for _, class := range classes {
				if got, want := errors.Is(err, class), class == tc.want; got != want {
					t.Errorf("errors.Is(%q, %v): got %v, want %v", err, class, got, want)
				}
			}
		})
	}
}

func TestDecodeToleratesUnknownFields(t *testing.T) {
	payload := `{"order_id":"o-1","payment_id":"p-1","amount_cents":100,"currency":"EUR","fee_cents":3,"card":{"last4":"4242"}}`
	got, err := contracts.Decode(meta(contracts.TypePaymentCharged, "1"), []byte(payload))
	if err != nil {
		t.Fatalf("Decode: got error %v, want nil", err)
	}
	want := contracts.PaymentCharged{OrderID: "o-1", PaymentID: "p-1", AmountCents: 100, Currency: "EUR"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode: got %#v, want %#v", got, want)
	}
}

// TestDecodeIgnoresQueueMetadata: a delivered message carries the queue's
// own metadata beside the contract's (attempts, trace context, and on a
// dead letter's replay its stamp and the dead letter's reason); Decode
// reads only its own keys.
func TestDecodeIgnoresQueueMetadata(t *testing.T) {
	for _, tc := range samples() {
		payload, meta, err := contracts.Encode(tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{
			backend.MetadataAttempt: "2", backend.MetadataReplayForGroup: "payment", backend.MetadataReplayID: "r-1",
			backend.MetadataReplayedFrom: "12", backend.MetadataReplayedAt: "2026-03-01T10:00:14Z",
			backend.MetadataDeadLetterReason: "max attempts", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		} {
			meta[k] = v
		}
		got, err := contracts.Decode(meta, payload)
		if err != nil {
			t.Fatalf("%s: Decode: got error %v, want nil", tc.msg.MessageType(), err)
		}
		if !reflect.DeepEqual(got, tc.msg) {
			t.Errorf("Decode: got %#v, want %#v", got, tc.msg)
		}
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	_, err := contracts.Decode(meta("inventory.Nope", "1"), []byte(`{}`))
	if got, want := err.Error(), `decode inventory.Nope v1: unknown message type "inventory.Nope"`; got != want {
		t.Errorf("Error(): got %q, want %q", got, want)
	}
	_, err = contracts.Decode(nil, nil)
	if got, want := err.Error(), "decode (no type) v?: invalid metadata: type is missing"; got != want {
		t.Errorf("Error(): got %q, want %q", got, want)
	}
}

// The wire shape is part of the contract: field names must not drift.
func TestWireFieldNames(t *testing.T) {
	payload, _, err := contracts.Encode(contracts.ScheduleShipment{OrderID: "o-1", Items: []contracts.Item{{SKU: "A", Quantity: 1}}, Address: address()})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"order_id": "o-1",
		"items":    []any{map[string]any{"sku": "A", "quantity": float64(1)}},
		"address":  map[string]any{"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("payload: got %v, want %v", got, want)
	}
}
