package jsonbody

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// InvalidUTF8At returns the offset of the first byte of b that is not
// part of valid UTF-8, len(b) if every byte is.
func InvalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// Check refuses what encoding/json (v1) decodes without a word but an
// API does not accept, in body, a JSON document that decodes into a value
// of type t (valid UTF-8: see InvalidUTF8At): an escaped half of a UTF-16
// surrogate pair without its other half (v1 decodes it to U+FFFD), a
// member name given twice in one object, at any depth (v1 keeps the
// last), and, in an object that decodes into a struct, a member name that
// is not exactly one of the struct's json names (v1 matches them
// case-insensitively: "Customer_ID" fills customer_id). The error is an
// *Error naming the member as on the wire ("items[1].sku"). It reads the
// first JSON value of body only. encoding/json/v2 refuses all three by
// default, but Go 1.26 has it only with GOEXPERIMENT=jsonv2. Embedded
// structs are not looked into: their promoted fields are taken for
// unknown ones.
func Check(body []byte, t reflect.Type) error {
	if i, ok := loneSurrogateAt(body); ok {
		return &Error{Detail: fmt.Sprintf("request body escapes half a UTF-16 surrogate pair without the other half (%s at offset %d); it would be stored as U+FFFD", body[i:i+6], i)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	return strictValue(dec, t, "")
}

// strictValue checks the next value of dec, at path, which decodes into a
// value of type t (nil when unknown: a map's, an interface's).
func strictValue(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return &Error{Detail: fmt.Sprintf("invalid JSON: %v", err)}
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch tok {
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := strictValue(dec, elem, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	case json.Delim('{'):
		seen := make(map[string]bool)
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return &Error{Detail: fmt.Sprintf("invalid JSON: %v", err)}
			}
			key, _ := tok.(string) // in an object, Token returns a key or '}'
			field := key
			if path != "" {
				field = path + "." + key
			}
			if seen[key] {
				return &Error{Field: field, Detail: "is given more than once; give each field once"}
			}
			seen[key] = true
			var elem reflect.Type
			switch {
			case t != nil && t.Kind() == reflect.Struct:
				f, name, ok := FieldFold(t, key)
				if ok && name != key {
					return &Error{Field: field, Detail: fmt.Sprintf("is not a known field; did you mean %q? (field names are case-sensitive)", name)}
				}
				if !ok {
					return &Error{Field: field, Detail: "is not a known field"}
				}
				elem = f.Type
			case t != nil && t.Kind() == reflect.Map:
				elem = t.Elem()
			}
			if err := strictValue(dec, elem, field); err != nil {
				return err
			}
		}
	default:
		return nil // a scalar
	}
	if _, err := dec.Token(); err != nil { // the closing ']' or '}'
		return &Error{Detail: fmt.Sprintf("invalid JSON: %v", err)}
	}
	return nil
}

// FieldFold finds the field of struct type t whose json name (tag or Go
// name) is key, or else equals key under Unicode case folding (the field
// encoding/json v1 decodes key into), and returns it with its json name.
func FieldFold(t reflect.Type, key string) (reflect.StructField, string, bool) {
	var (
		folded     reflect.StructField
		foldedName string
		found      bool
	)
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f, name, true
		}
		if !found && strings.EqualFold(name, key) {
			folded, foldedName, found = f, name, true
		}
	}
	return folded, foldedName, found
}

// loneSurrogateAt returns the offset of the first \u escape in body, a
// JSON document, that stands for half of a UTF-16 surrogate pair without
// the other half right after it, and whether there is one. The body is
// valid UTF-8, yet encoding/json decodes such an escape ("c\ud800") to
// U+FFFD without a word. Outside strings JSON has no backslash, so the
// escapes are found without tracking strings; an escaped backslash is
// stepped over whole, so "\\ud800" is not taken for one.
func loneSurrogateAt(body []byte) (int, bool) {
	for i := 0; i+1 < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		if body[i+1] != 'u' {
			i++ // a one-character escape, such as \\ itself
			continue
		}
		r, ok := hex4(body, i+2)
		switch {
		case !ok:
			i++ // not an escape the decoder takes: its own error
		case r >= 0xDC00 && r <= 0xDFFF: // a low half first
			return i, true
		case r >= 0xD800 && r <= 0xDBFF: // a high half: a low one must follow
			if i+7 < len(body) && body[i+6] == '\\' && body[i+7] == 'u' {
				if lo, ok := hex4(body, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 11
					continue
				}
			}
			return i, true
		default:
			i += 5
		}
	}
	return 0, false
}

// hex4 reads the four hexadecimal digits of b at i.
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[i:i+4]), 16, 16)
	return rune(n), err == nil
}
