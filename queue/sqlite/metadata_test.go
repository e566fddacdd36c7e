package sqlite

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

var metadataSamples = []message.Metadata{
	nil,
	{},
	{"traceparent": "00-2d2cad92d34164ac4c278393e546a5fe-81ee41ca0c076efc-01", "type": "order.OrderCompleted", "schema_version": "1"},
	{"a": "x", "b": ""},
	{"quote": `say "hi"`, "backslash": `C:\dir`},
	{"html": "<b>&</b>", "ctl": "line\nbreak\t"},
	{"utf8": "Grüße, 東京", "sep": "a\u2028b"},
	{"bad": "\xff\xfe"},
	{"del": "\x7f"},
}

// encodeMetadata writes what json.Marshal writes, whatever the metadata.
func TestEncodeMetadataIsJSONMarshal(t *testing.T) {
	for _, md := range metadataSamples {
		checkEncode(t, md)
	}
}

func checkEncode(t *testing.T, md message.Metadata) {
	t.Helper()
	got, err := encodeMetadata(md)
	want, wantErr := json.Marshal(md)
	if err != nil || wantErr != nil || got != string(want) {
		t.Errorf("encodeMetadata(%q): got %q, %v; want %q, %v", md, got, err, want, wantErr)
	}
}

// decodeMetadata reads what json.Unmarshal reads, and fails where it fails.
func TestDecodeMetadataIsJSONUnmarshal(t *testing.T) {
	for _, md := range metadataSamples {
		s, _ := json.Marshal(md)
		checkDecode(t, string(s))
	}
	for _, s := range []string{
		`{"a":"1","a":"2"}`, `{ "a" : "1" }`, `{"a":"\u0041"}`, `{"a":1}`, `{"a":"1"`, `{"a":"1"}x`,
		`{"a":"1",}`, `{"a" "1"}`, `null`, `[]`, `{`, ``, `{"a":"` + "\x01" + `"}`, `{"a":"` + "\xff" + `"}`,
	} {
		checkDecode(t, s)
	}
}

func checkDecode(t *testing.T, s string) {
	t.Helper()
	got := message.Metadata{}
	err := decodeMetadata(s, got)
	want := message.Metadata{}
	wantErr := json.Unmarshal([]byte(s), &want)
	if (err != nil) != (wantErr != nil) {
		t.Errorf("decodeMetadata(%q): got error %v, want %v", s, err, wantErr)
		return
	}
	// maps.Equal counts a nil map (json.Unmarshal of null) equal to the
	// empty one decodeMetadata leaves, which is the documented difference.
	if err == nil && !maps.Equal(got, want) {
		t.Errorf("decodeMetadata(%q): got %q, want %q", s, got, want)
	}
}

func FuzzMetadataCodec(f *testing.F) {
	f.Add("k", "v", "k2", "v2", `{"k":"v"}`)
	f.Add("traceparent", "00-2d2c-01", "type", `"q"`, `{"a":"\n"}`)
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, raw string) {
		checkEncode(t, message.Metadata{k1: v1, k2: v2})
		s, _ := json.Marshal(message.Metadata{k1: v1, k2: v2})
		checkDecode(t, string(s))
		checkDecode(t, raw)
	})
}

func BenchmarkMetadataCodec(b *testing.B) {
	md := metadataSamples[2]
	s, _ := encodeMetadata(md)
	b.Run("ours", func(b *testing.B) {
		for b.Loop() {
			_, _ = encodeMetadata(md)
			_ = decodeMetadata(s, message.Metadata{})
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(md)
			m := message.Metadata{}
			_ = json.Unmarshal([]byte(s), &m)
		}
	})
}
