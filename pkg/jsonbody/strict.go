package jsonbody

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// invalidUTF8At returns the offset of the first byte of b that is not
// part of valid UTF-8, len(b) if every byte is.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// check refuses what encoding/json (v1) decodes without a word but an API
// does not accept, in body, a JSON document that decodes into a value of
// type t (valid UTF-8 and valid JSON: see Decode), and what encoding/json
// refuses in words for Go's programmers: an escaped half of a UTF-16
// surrogate pair without its other half (v1 decodes it to U+FFFD), a
// member name given twice in one object, at any depth (v1 keeps the
// last), a member name of an object that decodes into a struct that is
// not exactly one of the struct's json names (v1 matches them
// case-insensitively: "Customer_ID" fills customer_id); and a value of
// another JSON type than its Go type's, or beyond its range. The error is
// an *Error naming the member as on the wire ("items[1].sku"), the first
// at fault in the body's order. encoding/json/v2 refuses the first three
// by default, but Go 1.26 has it only with GOEXPERIMENT=jsonv2.
//
// It returns body with every integer sent for an integer field other than
// in decimal ("2.0", "1e2") rewritten in decimal ("2", "100"), which
// encoding/json then takes. Embedded structs are not looked into: their
// promoted fields are taken for unknown ones.
func check(body []byte, t reflect.Type) ([]byte, error) {
	if i, ok := loneSurrogateAt(body); ok {
		return nil, &Error{Detail: fmt.Sprintf("request body escapes half a UTF-16 surrogate pair without the other half (%s at offset %d); it would be stored as U+FFFD", body[i:i+6], i)}
	}
	c := checker{dec: json.NewDecoder(bytes.NewReader(body))}
	c.dec.UseNumber()
	if err := c.value(t, ""); err != nil {
		return nil, err
	}
	return c.rewrite(body), nil
}

// checker reads a JSON document token by token beside the Go type it
// decodes into.
type checker struct {
	dec *json.Decoder
	// decimals are the integers to write in decimal, in the body's order.
	decimals []decimal
}

// decimal is the integer body[start:end], to be written as text.
type decimal struct {
	start, end int64
	text       string
}

// value checks the next value of the document, at path, which decodes
// into a value of type t (nil when any JSON value does: a map's of
// interfaces, a json.RawMessage's).
func (c *checker) value(t reflect.Type, path string) error {
	tok, err := c.dec.Token()
	if err != nil {
		return &Error{Detail: fmt.Sprintf("invalid JSON: %v", err)}
	}
	want, t := expect(t)
	switch tok := tok.(type) {
	case json.Delim: // '[' or '{': their ends are read below
		if tok == '[' {
			return c.array(t, want, path)
		}
		return c.object(t, want, path)
	case string:
		return mismatch(path, want, "string")
	case bool:
		return mismatch(path, want, "boolean")
	case json.Number:
		return c.number(tok, t, want, path)
	}
	return nil // null, which encoding/json takes for any type
}

// array checks the elements of an array, up to its ']', at path.
func (c *checker) array(t reflect.Type, want, path string) error {
	if err := mismatch(path, want, "array"); err != nil {
		return err
	}
	var elem reflect.Type
	if want == "array" {
		elem = t.Elem()
	}
	for i := 0; c.dec.More(); i++ {
		if err := c.value(elem, path+"["+strconv.Itoa(i)+"]"); err != nil {
			return err
		}
	}
	return c.end()
}

// object checks the members of an object, up to its '}', at path.
func (c *checker) object(t reflect.Type, want, path string) error {
	if err := mismatch(path, want, "object"); err != nil {
		return err
	}
	seen := make(map[string]bool)
	for c.dec.More() {
		tok, err := c.dec.Token()
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
		case want == "object" && t.Kind() == reflect.Struct:
			f, name, ok := fieldFold(t, key)
			if ok && name != key {
				return &Error{Field: field, Detail: fmt.Sprintf("is not a known field; did you mean %q? (field names are case-sensitive)", name)}
			}
			if !ok {
				return &Error{Field: field, Detail: "is not a known field"}
			}
			if !quoted(f) {
				elem = f.Type
			}
		case want == "object": // a map
			elem = t.Elem()
		}
		if err := c.value(elem, field); err != nil {
			return err
		}
	}
	return c.end()
}

// end reads the ']' or '}' that closes an array or object.
func (c *checker) end() error {
	if _, err := c.dec.Token(); err != nil {
		return &Error{Detail: fmt.Sprintf("invalid JSON: %v", err)}
	}
	return nil
}

// number checks n, the number just read, at path, for a value of type t
// (not a pointer) of JSON type want: an integer field takes one without a
// fractional part in its range, noted to be written in decimal if it is
// not; a number field one in its range.
func (c *checker) number(n json.Number, t reflect.Type, want, path string) error {
	lit := string(n)
	switch want {
	case "integer":
		text, isInt := integerDecimal(lit)
		if !isInt {
			return &Error{Field: path, Detail: "must be of type integer, got number " + lit}
		}
		if !fitsInteger(text, t) {
			lo, hi := intRange(t)
			return &Error{Field: path, Detail: fmt.Sprintf("must be an integer from %s to %s, got %s", lo, hi, lit), OutOfRange: lit}
		}
		if text != lit {
			end := c.dec.InputOffset() // just past the number, as sent
			c.decimals = append(c.decimals, decimal{start: end - int64(len(lit)), end: end, text: text})
		}
		return nil
	case "number":
		if _, err := strconv.ParseFloat(lit, t.Bits()); err != nil {
			limit := strconv.FormatFloat(maxFloat(t), 'g', -1, t.Bits())
			return &Error{Field: path, Detail: fmt.Sprintf("must be a number from -%s to %s, got %s", limit, limit, lit), OutOfRange: lit}
		}
		return nil
	}
	return mismatch(path, want, "number")
}

// rewrite returns body with the integers c noted written in decimal.
func (c *checker) rewrite(body []byte) []byte {
	if len(c.decimals) == 0 {
		return body
	}
	out := make([]byte, 0, len(body))
	var last int64
	for _, d := range c.decimals {
		out = append(out, body[last:d.start]...)
		out = append(out, d.text...)
		last = d.end
	}
	return append(out, body[last:]...)
}

// mismatch is the error of a value of JSON type got at path where one of
// type want is expected, nil if want is got or "" (any).
func mismatch(path, want, got string) error {
	if want == "" || want == got {
		return nil
	}
	return &Error{Field: path, Detail: fmt.Sprintf("must be of type %s, got %s", want, got)}
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// expect returns the JSON type a value of type t is decoded from (see
// jsonType), with t without its pointers; "" and nil when encoding/json
// takes any JSON value for t, or t decodes itself (a json.Unmarshaler,
// such as json.RawMessage), or check does not follow it (a []byte, which
// takes base64 text or an array of numbers). A TextUnmarshaler is
// decoded from a string.
func expect(t reflect.Type) (string, reflect.Type) {
	for t != nil && t.Kind() == reflect.Pointer && !t.Implements(jsonUnmarshaler) && !t.Implements(textUnmarshaler) {
		t = t.Elem()
	}
	switch {
	case t == nil, t.Implements(jsonUnmarshaler), reflect.PointerTo(t).Implements(jsonUnmarshaler):
		return "", nil
	case t.Implements(textUnmarshaler), reflect.PointerTo(t).Implements(textUnmarshaler):
		return "string", nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return "", nil
	}
	want := jsonType(t)
	if want == "" {
		return "", nil
	}
	return want, t
}

// quoted reports whether struct field f has the ",string" option, which
// makes encoding/json read its number or boolean from a JSON string.
func quoted(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
	for opts != "" {
		var opt string
		opt, opts, _ = strings.Cut(opts, ",")
		if opt == "string" {
			return true
		}
	}
	return false
}

// fitsInteger reports whether text, an integer in decimal ("" when it has
// more digits than any 64-bit integer), is in the range of integer type t.
func fitsInteger(text string, t reflect.Type) bool {
	if text == "" {
		return false
	}
	var err error
	if isUnsigned(t) {
		_, err = strconv.ParseUint(text, 10, t.Bits())
	} else {
		_, err = strconv.ParseInt(text, 10, t.Bits())
	}
	return err == nil
}

// maxFloat is the greatest finite value of float type t.
func maxFloat(t reflect.Type) float64 {
	if t.Bits() == 32 {
		return math.MaxFloat32
	}
	return math.MaxFloat64
}

// fieldFold finds the field of struct type t whose json name (tag or Go
// name) is key, or else equals key under Unicode case folding (the field
// encoding/json v1 decodes key into), and returns it with its json name.
func fieldFold(t reflect.Type, key string) (reflect.StructField, string, bool) {
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
