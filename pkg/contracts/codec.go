package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
)

// ErrUndecodable matches every error Decode returns. Such a message will never
// decode however often it is redelivered: consumers dead-letter it at once
// instead of retrying it.
var ErrUndecodable = errors.New("undecodable message")

// The failure classes of Decode. A *DecodeError wraps exactly one of them, so
// errors.Is tells them apart; all of them also match ErrUndecodable.
var (
	// ErrInvalidMetadata: the type or schema_version key is missing or
	// malformed, or correlation_id disagrees with the payload's order_id.
	ErrInvalidMetadata = errors.New("invalid metadata")
	// ErrUnknownType: no contract has this type.
	ErrUnknownType = errors.New("unknown message type")
	// ErrUnsupportedVersion: the type is known but not at this schema version.
	ErrUnsupportedVersion = errors.New("unsupported schema version")
	// ErrMalformedPayload: the payload is not one JSON object of the type's
	// shape (syntax error, wrong field type, trailing data).
	ErrMalformedPayload = errors.New("malformed payload")
	// ErrInvalidMessage: the payload parses but breaks the contract (a missing
	// order_id, no items, a negative quantity…). Encode returns it too.
	ErrInvalidMessage = errors.New("invalid message")
)

// DecodeError is the only error type Decode returns. It carries the metadata
// the message arrived with, for the dead-letter record, and the cause.
type DecodeError struct {
	// Type and SchemaVersion are the metadata values as received, possibly
	// empty.
	Type          string
	SchemaVersion string
	// Err wraps one of ErrInvalidMetadata, ErrUnknownType,
	// ErrUnsupportedVersion, ErrMalformedPayload or ErrInvalidMessage.
	Err error
}

func (e *DecodeError) Error() string {
	typ, ver := e.Type, e.SchemaVersion
	if typ == "" {
		typ = "(no type)"
	}
	if ver == "" {
		ver = "?"
	}
	return fmt.Sprintf("decode %s v%s: %v", typ, ver, e.Err)
}

// Unwrap returns the cause, so errors.Is(err, ErrUnknownType) and the like work.
func (e *DecodeError) Unwrap() error { return e.Err }

// Is reports whether target is ErrUndecodable: every DecodeError is.
func (e *DecodeError) Is(target error) bool { return target == ErrUndecodable }

// Encode validates m and returns its JSON payload and the metadata to publish
// it with: type, schema_version and correlation_id. The caller adds
// causation_id, and the queue the trace context and attempt. Timestamps are
// written in UTC. A message that breaks its contract is not encoded: the error
// wraps ErrInvalidMessage. m may be a contract value or a non-nil pointer to one.
func Encode(m Message) (payload []byte, meta map[string]string, err error) {
	m, err = concrete(m)
	if err != nil {
		return nil, nil, err
	}
	m = inUTC(m)
	if err := m.validate(); err != nil {
		return nil, nil, fmt.Errorf("encode %s: %w", m.MessageType(), err)
	}
	payload, err = json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s: %w", m.MessageType(), err)
	}
	meta = map[string]string{
		MetadataType:          m.MessageType(),
		MetadataSchemaVersion: strconv.Itoa(SchemaVersion),
		MetadataCorrelationID: m.CorrelationID(),
	}
	return payload, meta, nil
}

// Decode returns the contract value (never a pointer) that meta's type and
// schema_version name, parsed from payload and validated. Every error is a
// *DecodeError matching ErrUndecodable; see the Err* class variables.
//
// What is strict: type and schema_version must be present and known, the
// version written canonically ("1", not "01" or "+1"); the payload must be a
// single JSON object with no trailing data, each field of the right JSON type
// (a quantity of 1.5 or "2" is refused); every required field must be set and
// valid; a correlation_id, when present, must equal the payload's order_id.
//
// What is tolerated, on purpose: fields the type does not know. Services are
// deployed one at a time; a producer adding an optional field to a v1 message
// must not send every copy of it to the dead-letter queue until the consumers
// are redeployed (the tolerant-reader rule). Anything that changes the meaning
// or the requirements of a message bumps schema_version instead, and a
// consumer that does not know that version refuses it. The unknown fields are
// dropped, so a decoded message re-encodes to its known fields only.
// encoding/json also matches field names case-insensitively and keeps the last
// of duplicated keys; both are accepted as they cannot smuggle in an invalid
// value past validation.
func Decode(meta map[string]string, payload []byte) (Message, error) {
	typ, ver := meta[MetadataType], meta[MetadataSchemaVersion]
	fail := func(err error) (Message, error) {
		return nil, &DecodeError{Type: typ, SchemaVersion: ver, Err: err}
	}
	if typ == "" {
		return fail(fmt.Errorf("%w: %s is missing", ErrInvalidMetadata, MetadataType))
	}
	version, err := strconv.Atoi(ver)
	if err != nil || strconv.Itoa(version) != ver {
		return fail(fmt.Errorf("%w: %s %q is not a decimal integer", ErrInvalidMetadata, MetadataSchemaVersion, ver))
	}
	decode, err := lookup(typ, version)
	if err != nil {
		return fail(err)
	}
	m, err := decode(payload)
	if err != nil {
		return fail(err)
	}
	if cid, ok := meta[MetadataCorrelationID]; ok && cid != m.CorrelationID() {
		return fail(fmt.Errorf("%w: %s %q differs from order_id %q",
			ErrInvalidMetadata, MetadataCorrelationID, cid, m.CorrelationID()))
	}
	return m, nil
}

// KnownType reports whether typ is the type of a contract (of any schema
// version), so that what a message's metadata claims can be told from
// what exists: a metric labelled with made-up types would grow a series
// per type that anyone writing to the queue sends.
func KnownType(typ string) bool {
	_, err := lookup(typ, 1)
	return !errors.Is(err, ErrUnknownType)
}

// decodeFunc parses and validates one schema version of one message type.
type decodeFunc func(payload []byte) (Message, error)

// lookup is the registry of decodable messages: for each type, its decoder
// per schema version, indexed by the version number. It is a switch rather
// than a package-level map so that nothing can add to it at run time. When a
// type gets a version 2, its line becomes {1: decodeV1X, 2: decodeJSON[X]}
// with decodeV1X upgrading the old shape to the current type.
func lookup(typ string, version int) (decodeFunc, error) {
	var versions []decodeFunc
	switch typ {
	case TypeReserveStock:
		versions = []decodeFunc{1: decodeJSON[ReserveStock]}
	case TypeReleaseStock:
		versions = []decodeFunc{1: decodeJSON[ReleaseStock]}
	case TypeStockReserved:
		versions = []decodeFunc{1: decodeJSON[StockReserved]}
	case TypeStockReservationFailed:
		versions = []decodeFunc{1: decodeJSON[StockReservationFailed]}
	case TypeStockReleased:
		versions = []decodeFunc{1: decodeJSON[StockReleased]}
	case TypeChargePayment:
		versions = []decodeFunc{1: decodeJSON[ChargePayment]}
	case TypeRefundPayment:
		versions = []decodeFunc{1: decodeJSON[RefundPayment]}
	case TypePaymentCharged:
		versions = []decodeFunc{1: decodeJSON[PaymentCharged]}
	case TypePaymentDeclined:
		versions = []decodeFunc{1: decodeJSON[PaymentDeclined]}
	case TypePaymentRefunded:
		versions = []decodeFunc{1: decodeJSON[PaymentRefunded]}
	case TypeScheduleShipment:
		versions = []decodeFunc{1: decodeJSON[ScheduleShipment]}
	case TypeCancelShipment:
		versions = []decodeFunc{1: decodeJSON[CancelShipment]}
	case TypeShipmentScheduled:
		versions = []decodeFunc{1: decodeJSON[ShipmentScheduled]}
	case TypeShipmentFailed:
		versions = []decodeFunc{1: decodeJSON[ShipmentFailed]}
	case TypeShipmentCancelled:
		versions = []decodeFunc{1: decodeJSON[ShipmentCancelled]}
	case TypeOrderPlaced:
		versions = []decodeFunc{1: decodeJSON[OrderPlaced]}
	case TypeOrderCompleted:
		versions = []decodeFunc{1: decodeJSON[OrderCompleted]}
	case TypeOrderCancelled:
		versions = []decodeFunc{1: decodeJSON[OrderCancelled]}
	case TypeOrderRejected:
		versions = []decodeFunc{1: decodeJSON[OrderRejected]}
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownType, typ)
	}
	if version < 0 || version >= len(versions) || versions[version] == nil {
		return nil, fmt.Errorf("%w %d", ErrUnsupportedVersion, version)
	}
	return versions[version], nil
}

// decodeJSON parses payload as one T strictly (see Decode) and validates it.
func decodeJSON[T Message](payload []byte) (Message, error) {
	if b := bytes.TrimLeft(payload, " \t\r\n"); len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformedPayload)
	}
	var m T
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPayload, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrMalformedPayload)
	}
	msg := inUTC(m)
	if err := msg.validate(); err != nil {
		return nil, err
	}
	return msg, nil
}

// concrete returns the contract value m holds, dereferencing a pointer.
func concrete(m Message) (Message, error) {
	if m == nil {
		return nil, fmt.Errorf("encode: %w: nil message", ErrInvalidMessage)
	}
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Pointer {
		return m, nil
	}
	if v.IsNil() {
		return nil, fmt.Errorf("encode %T: %w: nil message", m, ErrInvalidMessage)
	}
	return v.Elem().Interface().(Message), nil
}

// inUTC returns m with its timestamps in UTC and without a monotonic reading,
// so that a decoded message equals its re-encoded and re-decoded self.
func inUTC(m Message) Message {
	switch v := m.(type) {
	case OrderPlaced:
		v.PlacedAt = v.PlacedAt.UTC()
		return v
	case OrderCompleted:
		v.CompletedAt = v.CompletedAt.UTC()
		return v
	case OrderCancelled:
		v.CancelledAt = v.CancelledAt.UTC()
		return v
	case OrderRejected:
		v.RejectedAt = v.RejectedAt.UTC()
		return v
	}
	return m
}
