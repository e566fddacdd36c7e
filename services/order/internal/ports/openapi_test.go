package ports

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/services/order/internal/ordertest"
)

var update = flag.Bool("update", false, "rewrite openapi.yaml from openapi.json")

// openAPIDoc is the part of an OpenAPI document the tests read.
type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Info    struct {
		Title   string `json:"title"`
		Version string `json:"version"`
	} `json:"info"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components map[string]map[string]json.RawMessage `json:"components"`
}

func loadDoc(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentParses(t *testing.T) {
	doc := loadDoc(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if doc.Info.Title == "" || doc.Info.Version == "" {
		t.Errorf("info: title %q version %q, want both set", doc.Info.Title, doc.Info.Version)
	}
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace", "parameters", "summary", "description"}
	for path, item := range doc.Paths {
		for m, op := range item {
			if !slices.Contains(methods, m) {
				t.Errorf("%s: unknown key %q in path item", path, m)
				continue
			}
			if m == "parameters" || m == "summary" || m == "description" {
				continue
			}
			var o struct {
				Responses map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(op, &o); err != nil || len(o.Responses) == 0 {
				t.Errorf("%s %s: no responses (err %v)", m, path, err)
			}
		}
	}
	// Every $ref points at a component that exists.
	var all any
	if err := json.Unmarshal(OpenAPI, &all); err != nil {
		t.Fatal(err)
	}
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					refs = append(refs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(all)
	if len(refs) == 0 {
		t.Fatal("no $ref found; the walk is broken")
	}
	for _, ref := range refs {
		parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
		if !strings.HasPrefix(ref, "#/components/") || len(parts) != 2 {
			t.Errorf("$ref %q: want #/components/KIND/NAME", ref)
			continue
		}
		if _, ok := doc.Components[parts[0]][parts[1]]; !ok {
			t.Errorf("$ref %q: no such component", ref)
		}
	}
}

// TestOpenAPIMatchesRoutes: every route registered on the echo instance is
// in the document, and every operation of the document is a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	e, err := NewHTTPHandler(HTTPConfig{App: env.App})
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`:([A-Za-z0-9_]+)`)
	var routes []string
	for _, r := range e.Routes() {
		if r.Method == "echo_route_not_found" {
			continue
		}
		routes = append(routes, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
	}
	var documented []string
	for path, item := range loadDoc(t).Paths {
		for m := range item {
			switch m {
			case "parameters", "summary", "description":
				continue
			}
			documented = append(documented, strings.ToUpper(m)+" "+path)
		}
	}
	slices.Sort(routes)
	slices.Sort(documented)
	if len(routes) < 8 {
		t.Fatalf("only %d routes registered: %v", len(routes), routes)
	}
	for _, r := range routes {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is registered but not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routes, d) {
			t.Errorf("openapi.json documents %s, which is not registered", d)
		}
	}
}

// TestOpenAPIDocumentsTheSharedErrorStatuses: every operation documents
// the statuses that problemFor, shared by all handlers, gives it: 503 when
// the request timeout passes (every route but the static ones, whose
// handlers cannot fail), 400, 413 and 415 when it decodes a body, 404 when it
// names an order; and those of the server (NewHTTPServer): 421 for a Host
// it does not answer to, on every operation, 403 for a cross-origin
// write, on every POST.
func TestOpenAPIDocumentsTheSharedErrorStatuses(t *testing.T) {
	static := []string{"GET /healthz", "GET /openapi.json", "GET /openapi.yaml"}
	checked := 0
	for path, item := range loadDoc(t).Paths {
		for m, raw := range item {
			switch m {
			case "parameters", "summary", "description":
				continue
			}
			op := strings.ToUpper(m) + " " + path
			var o struct {
				RequestBody json.RawMessage            `json:"requestBody"`
				Parameters  []map[string]any           `json:"parameters"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			want := []string{"421"}
			if m == "post" {
				want = append(want, "403")
			}
			if !slices.Contains(static, op) {
				want = append(want, "503")
			}
			if o.RequestBody != nil {
				want = append(want, "400", "413", "415")
			}
			for _, p := range o.Parameters {
				if p["$ref"] == "#/components/parameters/OrderID" {
					want = append(want, "404")
				}
			}
			for _, code := range want {
				if _, ok := o.Responses[code]; !ok {
					t.Errorf("%s: does not document %s", op, code)
				}
			}
			checked++
		}
	}
	if checked < 8 {
		t.Fatalf("only %d operations checked", checked)
	}
}

func TestOpenAPIServed(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	e, err := NewHTTPHandler(HTTPConfig{App: env.App})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, contentType string
		body              []byte
	}{
		{"/openapi.json", "application/json", OpenAPI},
		{"/openapi.yaml", "application/yaml", OpenAPIYAML},
	} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", tc.path, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
			t.Errorf("GET %s: content type %q, want %s", tc.path, ct, tc.contentType)
		}
		if !bytes.Equal(rec.Body.Bytes(), tc.body) {
			t.Errorf("GET %s: body differs from the embedded document", tc.path)
		}
	}
	if !bytes.HasPrefix(OpenAPIYAML, []byte("openapi: 3.1.0\n")) {
		t.Errorf("YAML starts with %q, want openapi: 3.1.0", OpenAPIYAML[:min(40, len(OpenAPIYAML))])
	}
}

// TestOpenAPIYAMLFile keeps openapi.yaml, the YAML rendering kept in the
// repository for readers, in step with openapi.json. Run with -update
// after editing openapi.json.
func TestOpenAPIYAMLFile(t *testing.T) {
	if *update {
		if err := os.WriteFile("openapi.yaml", OpenAPIYAML, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, OpenAPIYAML) {
		t.Error("openapi.yaml is not the YAML form of openapi.json: edit openapi.json, then run go test ./services/order/internal/ports -run OpenAPIYAMLFile -update")
	}
}

func TestJSONToYAML(t *testing.T) {
	in := `{
	  "openapi": "3.1.0",
	  "paths": {"/orders/{id}": {"get": {"responses": {"200": {"$ref": "#/x"}}}}},
	  "tricky": ["true", "", "a: b", "line 1\nline 2", "42", " padded", "- dash", "#hash", "plain text, fine", "/orders", "1.0.0", "3.1"],
	  "numbers": [1, 2.5, -3e2],
	  "literals": [true, false, null],
	  "empty": {"o": {}, "a": []},
	  "items": [{"name": "id", "in": "path"}, {"x": [1, [2, 3]]}],
	  "nested": [[1, 2], []]
	}`
	got, err := jsonToYAML([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `openapi: 3.1.0
paths:
  "/orders/{id}":
    get:
      responses:
        "200":
          "$ref": "#/x"
tricky:
  - "true"
  - ""
  - "a: b"
  - "line 1\nline 2"
  - "42"
  - " padded"
  - "- dash"
  - "#hash"
  - plain text, fine
  - /orders
  - 1.0.0
  - "3.1"
numbers:
  - 1
  - 2.5
  - -3e2
literals:
  - true
  - false
  - null
empty:
  o: {}
  a: []
items:
  - name: id
    in: path
  - x:
      - 1
      - - 2
        - 3
nested:
  - - 1
    - 2
  - []
`
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if _, err := jsonToYAML([]byte(`{"a": 1} {}`)); err == nil {
		t.Error("trailing data accepted")
	}
	if _, err := jsonToYAML([]byte(`{"a": `)); err == nil {
		t.Error("truncated JSON accepted")
	}
}
