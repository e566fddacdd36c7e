package harness

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one span as the receiver got it, flattened for assertions.
type Span struct {
	TraceID      string // hex
	SpanID       string // hex
	ParentSpanID string // hex; "" for a root span
	Name         string
	Kind         string // SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL
	Service      string // resource attribute service.name
	Attrs        map[string]string
	Events       []SpanEvent
	Error        bool // status code ERROR
	StatusMsg    string
	Start, End   time.Time
}

// SpanEvent is an event of a span.
type SpanEvent struct {
	Name  string
	Attrs map[string]string
}

// HasEvent reports whether the span has an event called name.
func (s Span) HasEvent(name string) bool {
	for _, e := range s.Events {
		if e.Name == name {
			return true
		}
	}
	return false
}

func (s Span) String() string {
	return fmt.Sprintf("%s %q (%s, span %s parent %s)", s.Service, s.Name, s.Kind, s.SpanID, s.ParentSpanID)
}

// Receiver is an OTLP/HTTP trace receiver (protobuf, optionally gzip) on a
// loopback port: point OTEL_EXPORTER_OTLP_ENDPOINT at Endpoint. It keeps
// every span in memory.
type Receiver struct {
	ln  net.Listener
	srv *http.Server

	mu       sync.Mutex
	spans    []Span
	byTrace  map[string][]int
	aborted  int // bodies cut short: the sender was killed mid-request
	failures []string
}

// NewReceiver listens on 127.0.0.1 (a free port) and serves until Close.
func NewReceiver() (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("otlp receiver: %w", err)
	}
	r := &Receiver{ln: ln, byTrace: map[string][]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.traces)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Endpoint is the base URL for OTEL_EXPORTER_OTLP_ENDPOINT.
func (r *Receiver) Endpoint() string { return "http://" + r.ln.Addr().String() }

// Close stops the server.
func (r *Receiver) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return r.srv.Shutdown(ctx)
}

// maxExport bounds one request body, decompressed.
const maxExport = 64 << 20

func (r *Receiver) traces(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = http.MaxBytesReader(w, req.Body, maxExport)
	if strings.EqualFold(req.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(body)
		if err != nil {
			r.failOrAbort(w, "gzip", err)
			return
		}
		defer zr.Close()
		body = io.LimitReader(zr, maxExport)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		r.failOrAbort(w, "read", err)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/x-protobuf") {
		r.fail(w, http.StatusUnsupportedMediaType, "content type "+ct+": only application/x-protobuf")
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &msg); err != nil {
		r.fail(w, http.StatusBadRequest, "decode: "+err.Error())
		return
	}
	r.add(&msg)
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// failOrAbort records a request whose body could not be read. A body that
// ends early means the sender died mid-request — the suite SIGKILLs
// services, and stops every one with SIGKILL at the end of a test — which
// is counted as aborted, not as a refusal.
func (r *Receiver) failOrAbort(w http.ResponseWriter, step string, err error) {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		r.mu.Lock()
		r.aborted++
		r.mu.Unlock()
		http.Error(w, step+": "+err.Error(), http.StatusBadRequest)
		return
	}
	r.fail(w, http.StatusBadRequest, step+": "+err.Error())
}

// Aborted counts requests whose sender went away before the body was
// complete.
func (r *Receiver) Aborted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.aborted
}

func (r *Receiver) fail(w http.ResponseWriter, code int, msg string) {
	r.mu.Lock()
	r.failures = append(r.failures, msg)
	r.mu.Unlock()
	http.Error(w, msg, code)
}

// Failures lists requests the receiver refused (which would be a bug in the
// exporter or here).
func (r *Receiver) Failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.failures...)
}

func (r *Receiver) add(msg *coltracepb.ExportTraceServiceRequest) {
	var got []Span
	for _, rs := range msg.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = anyValue(kv.GetValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				got = append(got, convertSpan(service, s))
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range got {
		r.byTrace[s.TraceID] = append(r.byTrace[s.TraceID], len(r.spans))
		r.spans = append(r.spans, s)
	}
}

func convertSpan(service string, s *tracepb.Span) Span {
	out := Span{
		TraceID: hex.EncodeToString(s.GetTraceId()),
		SpanID:  hex.EncodeToString(s.GetSpanId()),
		Name:    s.GetName(),
		Kind:    strings.TrimPrefix(s.GetKind().String(), "SPAN_KIND_"),
		Service: service,
		Attrs:   attrs(s.GetAttributes()),
		Error:   s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
		Start:   time.Unix(0, int64(s.GetStartTimeUnixNano())),
		End:     time.Unix(0, int64(s.GetEndTimeUnixNano())),
	}
	out.StatusMsg = s.GetStatus().GetMessage()
	if p := s.GetParentSpanId(); len(p) > 0 {
		out.ParentSpanID = hex.EncodeToString(p)
	}
	for _, e := range s.GetEvents() {
		out.Events = append(out.Events, SpanEvent{Name: e.GetName(), Attrs: attrs(e.GetAttributes())})
	}
	return out
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = anyValue(kv.GetValue())
	}
	return m
}

func anyValue(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		return hex.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.GetValues() {
			parts = append(parts, anyValue(e))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return ""
}

// Trace returns the spans of one trace received so far, by start time.
func (r *Receiver) Trace(traceID string) []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Span, 0, len(r.byTrace[traceID]))
	for _, i := range r.byTrace[traceID] {
		out = append(out, r.spans[i])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Spans returns every span received so far that keep accepts (all if nil).
func (r *Receiver) Spans(keep func(Span) bool) []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Span
	for _, s := range r.spans {
		if keep == nil || keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// WaitTrace polls the trace until check accepts it (returns nil) or ctx
// ends; it then returns the trace and check's last verdict. Spans arrive in
// batches from four processes, so a check that holds now may not have held
// a moment ago.
func (r *Receiver) WaitTrace(ctx context.Context, traceID string, check func([]Span) error) ([]Span, error) {
	for {
		spans := r.Trace(traceID)
		err := check(spans)
		if err == nil {
			return spans, nil
		}
		select {
		case <-ctx.Done():
			return spans, errors.Join(err, fmt.Errorf("trace %s: gave up: %w", traceID, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Tree is a trace indexed for parent/child questions.
type Tree struct {
	Spans []Span
	byID  map[string]Span
}

// NewTree indexes spans.
func NewTree(spans []Span) Tree {
	t := Tree{Spans: spans, byID: make(map[string]Span, len(spans))}
	for _, s := range spans {
		t.byID[s.SpanID] = s
	}
	return t
}

// Span returns the span with id.
func (t Tree) Span(id string) (Span, bool) {
	s, ok := t.byID[id]
	return s, ok
}

// Parent returns s's parent, if the trace holds it.
func (t Tree) Parent(s Span) (Span, bool) {
	if s.ParentSpanID == "" {
		return Span{}, false
	}
	return t.Span(s.ParentSpanID)
}

// Roots returns the spans without a parent.
func (t Tree) Roots() []Span {
	var out []Span
	for _, s := range t.Spans {
		if s.ParentSpanID == "" {
			out = append(out, s)
		}
	}
	return out
}

// Orphans returns the spans whose parent is not in the trace.
func (t Tree) Orphans() []Span {
	var out []Span
	for _, s := range t.Spans {
		if s.ParentSpanID != "" {
			if _, ok := t.byID[s.ParentSpanID]; !ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// Find returns the spans that keep accepts.
func (t Tree) Find(keep func(Span) bool) []Span {
	var out []Span
	for _, s := range t.Spans {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// DescendsFrom reports whether ancestor is s or one of its ancestors.
func (t Tree) DescendsFrom(s Span, ancestor string) bool {
	for range len(t.Spans) + 1 {
		if s.SpanID == ancestor {
			return true
		}
		p, ok := t.Parent(s)
		if !ok {
			return false
		}
		s = p
	}
	return false
}

// Services returns the service names present in the trace.
func (t Tree) Services() map[string]int {
	m := map[string]int{}
	for _, s := range t.Spans {
		m[s.Service]++
	}
	return m
}

// Dump renders the trace as an indented tree, for failure messages.
func (t Tree) Dump() string {
	children := map[string][]Span{}
	var roots []Span
	for _, s := range t.Spans {
		if _, ok := t.byID[s.ParentSpanID]; s.ParentSpanID == "" || !ok {
			roots = append(roots, s)
			continue
		}
		children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
	}
	var b strings.Builder
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		extra := ""
		if s.Error {
			extra += " ERROR(" + s.StatusMsg + ")"
		}
		for _, e := range s.Events {
			extra += " event:" + e.Name
		}
		if a := s.Attrs["messaging.delivery.attempt"]; a != "" && a != "1" {
			extra += " attempt=" + a
		}
		fmt.Fprintf(&b, "%s- [%s] %s %s%s\n", strings.Repeat("  ", depth), s.Service, s.Kind, s.Name, extra)
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}
