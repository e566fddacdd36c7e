package ports

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/labstack/echo/v4"
)

// OpenAPI is the order API's OpenAPI 3.1 document, the one kept in the
// repository (openapi.json), served at GET /openapi.json. A test checks
// that its paths are exactly the routes NewHTTPHandler registers.
//
//go:embed openapi.json
var OpenAPI []byte

// OpenAPIYAML is the same document as YAML, served at GET /openapi.yaml.
var OpenAPIYAML = mustYAML(OpenAPI)

// registerOpenAPI serves the document in both forms.
func registerOpenAPI(e *echo.Echo) {
	e.GET("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, OpenAPI)
	})
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", OpenAPIYAML)
	})
}

func mustYAML(doc []byte) []byte {
	y, err := jsonToYAML(doc)
	if err != nil {
		panic(fmt.Sprintf("openapi.json: %v", err))
	}
	return y
}

// jsonToYAML renders a JSON document as block-style YAML, keeping the
// order of object keys. Strings that could read as anything but the same
// string in YAML (numbers, booleans, null, indicators, ": ", newlines) are
// written double-quoted with JSON escapes, which YAML reads the same way.
func jsonToYAML(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	root, err := readNode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the document")
	}
	var b strings.Builder
	switch {
	case root.isScalar():
		b.WriteString(root.scalar + "\n")
	case root.empty():
		b.WriteString(root.flow() + "\n")
	default:
		root.write(&b, 0)
	}
	return []byte(b.String()), nil
}

// yamlNode is a JSON value with its object keys in document order.
type yamlNode struct {
	kind   byte // 'o' object, 'a' array, 's' scalar
	keys   []string
	vals   []*yamlNode // object values, or array items
	scalar string      // rendered scalar
}

func (n *yamlNode) isScalar() bool { return n.kind == 's' }
func (n *yamlNode) empty() bool    { return n.kind != 's' && len(n.vals) == 0 }

func (n *yamlNode) flow() string {
	if n.kind == 'o' {
		return "{}"
	}
	return "[]"
}

func readNode(dec *json.Decoder) (*yamlNode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &yamlNode{kind: 'o'}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := readNode(dec)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, kt.(string))
				n.vals = append(n.vals, v)
			}
			_, err := dec.Token() // '}'
			return n, err
		case '[':
			n := &yamlNode{kind: 'a'}
			for dec.More() {
				v, err := readNode(dec)
				if err != nil {
					return nil, err
				}
				n.vals = append(n.vals, v)
			}
			_, err := dec.Token() // ']'
			return n, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case string:
		return &yamlNode{kind: 's', scalar: yamlString(t)}, nil
	case json.Number:
		return &yamlNode{kind: 's', scalar: t.String()}, nil
	case bool:
		return &yamlNode{kind: 's', scalar: fmt.Sprint(t)}, nil
	case nil:
		return &yamlNode{kind: 's', scalar: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// write renders a non-empty object or array at indent.
func (n *yamlNode) write(b *strings.Builder, indent int) {
	pad := strings.Repeat(" ", indent)
	if n.kind == 'o' {
		for i, k := range n.keys {
			v := n.vals[i]
			b.WriteString(pad + yamlString(k) + ":")
			switch {
			case v.isScalar():
				b.WriteString(" " + v.scalar + "\n")
			case v.empty():
				b.WriteString(" " + v.flow() + "\n")
			default:
				b.WriteString("\n")
				v.write(b, indent+2)
			}
		}
		return
	}
	for _, v := range n.vals {
		switch {
		case v.isScalar():
			b.WriteString(pad + "- " + v.scalar + "\n")
		case v.empty():
			b.WriteString(pad + "- " + v.flow() + "\n")
		default:
			// The item's first line goes after the dash, the rest below it.
			var item strings.Builder
			v.write(&item, indent+2)
			b.WriteString(pad + "- " + strings.TrimPrefix(item.String(), pad+"  "))
		}
	}
}

// yamlString renders s plain when YAML reads it back as the same string,
// double-quoted otherwise.
func yamlString(s string) string {
	if plainSafe(s) {
		return s
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(buf.String(), "\n")
}

func plainSafe(s string) bool {
	if s == "" || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", ".inf", ".nan":
		return false
	}
	if versionRE.MatchString(s) {
		return true // 3.1.0: a number in neither YAML 1.1 nor 1.2
	}
	if c := s[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '/') {
		return false // digits could read as numbers; the rest are indicators
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(" _./-(),;+=", r):
		default:
			return false
		}
	}
	return true
}

var versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+){2,}$`)
