package sqlite

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
)

// A message's metadata is stored as a JSON object of strings, exactly as
// encoding/json writes a map[string]string. Every message is encoded once
// and decoded once per consumer group, and encoding/json's reflection made
// that 1.8 % of the services' CPU under load; encodeMetadata and
// decodeMetadata write and read the plain case themselves (keys and values
// of printable ASCII that need no escape) and hand anything else to
// encoding/json, so the stored text is the same either way.

// encodeMetadata returns md as json.Marshal would.
func encodeMetadata(md message.Metadata) (string, error) {
	if md == nil || !plainMetadata(md) {
		b, err := json.Marshal(md)
		return string(b), err
	}
	keys := make([]string, 0, len(md))
	size := 2
	for k, v := range md {
		keys = append(keys, k)
		size += len(k) + len(v) + 6
	}
	slices.Sort(keys)
	var b strings.Builder
	b.Grow(size)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(k)
		b.WriteString(`":"`)
		b.WriteString(md[k])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String(), nil
}

// plainMetadata reports whether every key and value is printable ASCII
// that encoding/json writes as it is (no quote, backslash or HTML
// character it escapes).
func plainMetadata(md message.Metadata) bool {
	for k, v := range md {
		if !plainString(k) || !plainString(v) {
			return false
		}
	}
	return true
}

func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// decodeMetadata adds the entries of the JSON object s to md, as
// json.Unmarshal into md would (on error md may hold some of them), except
// for JSON null, which leaves md as it is where json.Unmarshal would set
// the caller's variable to nil.
func decodeMetadata(s string, md message.Metadata) error {
	if !decodePlainMetadata(s, md) {
		return json.Unmarshal([]byte(s), &md)
	}
	return nil
}

// decodePlainMetadata decodes s if it is an object of strings without
// escapes or white space, valid UTF-8 and no control characters, and
// reports whether it was.
func decodePlainMetadata(s string, md message.Metadata) bool {
	if len(s) < 2 || s[0] != '{' || !utf8.ValidString(s) {
		return false
	}
	if s == "{}" {
		return true
	}
	var pairs [16][2]string
	n := 0
	rest := s[1:]
	for {
		key, after, ok := plainJSONString(rest)
		if !ok || len(after) == 0 || after[0] != ':' {
			return false
		}
		value, after, ok := plainJSONString(after[1:])
		if !ok || len(after) == 0 || n == len(pairs) {
			return false
		}
		pairs[n] = [2]string{key, value}
		n++
		switch after[0] {
		case ',':
			rest = after[1:]
			continue
		case '}':
			if len(after) != 1 {
				return false
			}
		default:
			return false
		}
		break
	}
	for _, p := range pairs[:n] {
		md[p[0]] = p[1]
	}
	return true
}

// plainJSONString reads a JSON string at the start of s that holds no
// escape and no control character, and returns its contents and what
// follows it.
func plainJSONString(s string) (value, rest string, ok bool) {
	if len(s) == 0 || s[0] != '"' {
		return "", "", false
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return s[1:i], s[i+1:], true
		case c == '\\' || c < 0x20:
			return "", "", false
		}
	}
	return "", "", false
}
