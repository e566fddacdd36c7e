// Package jsonbody reads the JSON body of an HTTP request strictly: one
// JSON object, of the shape of the value it fills, and nothing else. It
// refuses what encoding/json (v1) would take without a word and turn into
// something the client did not send: invalid UTF-8 and escaped lone
// surrogates (stored as U+FFFD), a member given twice (the last one wins),
// a member name in another case (matched case-insensitively), an unknown
// member, data after the object. And it takes what encoding/json refuses
// for an integer field but JSON Schema 2020-12 (the OpenAPI 3.1 documents'
// dialect) calls an integer: any number without a fractional part,
// however written (2, 2.0, 2e0). The order API and the admin API of every
// service read their bodies with it, so the two take and refuse the same
// bodies, in the same words.
//
// Its errors are *Error: the member at fault as on the wire
// ("items[1].quantity"), when there is one, and what is wrong with it, in
// words for the API's client (JSON Schema's type names, not Go's).
package jsonbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
)

// Error is a body that cannot be read as asked. An API answers it with a
// 400, or, when OutOfRange is set, as it answers a value out of range.
type Error struct {
	// Field is the member at fault as on the wire, array indexes included
	// ("items[1].sku"); "" when the fault is the body's as a whole
	// (invalid JSON, not UTF-8).
	Field string
	// Detail says what is wrong; with a Field, of that member
	// ("is given more than once; give each field once").
	Detail string
	// OutOfRange is the member's number as sent ("1e400") when the only
	// fault is its size: a number, or an integer for an integer field,
	// beyond the range of the field. The body is then well-formed JSON of
	// the expected shape, and an API may answer it as it answers a value
	// it does not take (the order API: 422) rather than as a malformed
	// body. "" for any other fault.
	OutOfRange string
}

// Error returns the detail, after the field and ": " when there is one.
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Detail
	}
	return e.Field + ": " + e.Detail
}

// Decode reads body, one JSON object, into v, a pointer to a struct (or a
// map), refusing with an *Error what does not fit, the first fault in the
// body's order:
//
//   - a body empty, or not a JSON object (null, an array: they would fill
//     nothing of v, and the request would be judged as an empty object);
//   - invalid UTF-8, invalid JSON, data after the object;
//   - an escaped lone surrogate, a member given twice, a member name not
//     exactly one of v's json names;
//   - a member whose value is of another JSON type than its field's
//     ("must be of type integer, got number 1.5", "must be of type
//     string, got boolean");
//   - a number beyond its field's range ("must be an integer from 0 to
//     255, got 256"), with OutOfRange set.
//
// An integer field takes any number without a fractional part, however
// written: 2, 2.0, 0.2e1 and 200e-2 are all 2, as JSON Schema 2020-12
// has it. A member sent as null leaves its field as it is (nil for a
// pointer), as encoding/json does.
//
// v is left partly filled when the last check fails: decode into a fresh
// value, and use it only when Decode returns nil.
func Decode(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return &Error{Detail: "request body is empty; want a JSON object"}
	}
	if trimmed[0] != '{' {
		return &Error{Detail: "request body is not a JSON object"}
	}
	if i := invalidUTF8At(body); i < len(body) {
		return &Error{Detail: fmt.Sprintf("request body is not valid UTF-8: byte 0x%02x at offset %d", body[i], i)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var object json.RawMessage
	if err := dec.Decode(&object); err != nil {
		return syntaxError(err)
	}
	// Token, not More: More is false before a stray ']' or '}', so
	// '{…}]junk' would pass. Only the end of the body may follow.
	if _, err := dec.Token(); err != io.EOF {
		return &Error{Detail: "data after the JSON object"}
	}
	decimal, err := check(body, reflect.TypeOf(v))
	if err != nil {
		return err
	}
	dec = json.NewDecoder(bytes.NewReader(decimal))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return valueError(err)
	}
	return nil
}

// syntaxError describes an error of reading a body as JSON.
func syntaxError(err error) error {
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return &Error{Detail: fmt.Sprintf("invalid JSON at byte %d: %v", syntax.Offset, syntax)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Detail: "truncated JSON"}
	}
	return &Error{Detail: "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
}

// valueError describes an error of decoding into a value a body check
// passed: what check does not model (a map's integer keys, a field with
// the ",string" option, a type that decodes itself), in JSON Schema's
// words; encoding/json names such a member without its array indexes.
func valueError(err error) error {
	var typ *json.UnmarshalTypeError
	if !errors.As(err, &typ) || typ.Type == nil {
		return &Error{Detail: strings.TrimPrefix(err.Error(), "json: ")}
	}
	got := typ.Value
	if got == "bool" {
		got = "boolean"
	}
	want, _ := expect(typ.Type)
	if want == "" {
		want = "another JSON type"
	}
	return &Error{Field: typ.Field, Detail: fmt.Sprintf("must be of type %s, got %s", want, got)}
}

// jsonType names the JSON type (JSON Schema's) that decodes into a value
// of type t, not a pointer; "" when encoding/json takes any JSON value
// for it (an interface) or none (a channel, a function).
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return ""
}

// intRange returns the least and greatest value of integer type t, as
// text.
func intRange(t reflect.Type) (lo, hi string) {
	bits := t.Bits()
	if isUnsigned(t) {
		return "0", fmt.Sprint(uint64(math.MaxUint64) >> (64 - bits))
	}
	return fmt.Sprint(int64(math.MinInt64) >> (64 - bits)), fmt.Sprint(int64(math.MaxInt64) >> (64 - bits))
}

// isUnsigned reports whether t is an unsigned integer type.
func isUnsigned(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}
