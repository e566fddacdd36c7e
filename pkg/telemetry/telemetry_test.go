package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/orderflow/orderflow/pkg/logtest"
)

// clearOTelEnv makes the tests independent of the caller's environment.
func clearOTelEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
	} {
		t.Setenv(k, "")
	}
}

func setup(t *testing.T, cfg Config) (*Telemetry, *logtest.Buffer) {
	t.Helper()
	logs := &logtest.Buffer{}
	cfg.LogWriter = logs
	tel, err := Setup(context.Background(), cfg)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	})
	return tel, logs
}

func TestSetupDisabledExporter(t *testing.T) {
	clearOTelEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	tel, logs := setup(t, Config{ServiceName: "order"})

	_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "op")
	if !span.SpanContext().IsValid() || !span.IsRecording() {
		t.Errorf("got span valid=%v recording=%v, want a recording span", span.SpanContext().IsValid(), span.IsRecording())
	}
	span.End()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: got %v, want nil", err)
	}
	if err := tel.Shutdown(ctx); err != nil {
		t.Errorf("second shutdown: got %v, want nil", err)
	}
	if got := logs.Records(t); len(got) != 0 {
		t.Errorf("got log records %v, want none", got)
	}
}

// closedPort returns a local TCP port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return port
}

func TestSetupUnreachableCollector(t *testing.T) {
	tests := []struct {
		name     string
		protocol string
	}{
		{name: "default protocol", protocol: ""},
		{name: "http/protobuf", protocol: "http/protobuf"},
		{name: "grpc", protocol: "grpc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearOTelEnv(t)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tc.protocol)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", fmt.Sprintf("http://127.0.0.1:%d", closedPort(t)))
			tel, logs := setup(t, Config{ServiceName: "payment"})

			tracer := tel.TracerProvider.Tracer("test")
			for range 5 {
				_, span := tracer.Start(context.Background(), "op")
				span.End()
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				_ = tel.TracerProvider.ForceFlush(ctx)
				cancel()
			}
			_, span := tracer.Start(context.Background(), "last")
			span.End()

			const bound = time.Second
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			start := time.Now()
			_ = tel.Shutdown(ctx) // deadline exceeded or an export error: either is fine
			if elapsed := time.Since(start); elapsed > bound+500*time.Millisecond {
				t.Errorf("shutdown took %v, want at most about %v", elapsed, bound)
			}

			var errRecords []map[string]any
			for _, r := range logs.Records(t) {
				if r["msg"] == "opentelemetry error" {
					errRecords = append(errRecords, r)
				}
			}
			if len(errRecords) != 1 {
				t.Fatalf("got %d error log records, want 1 (rate limited): %v", len(errRecords), errRecords)
			}
			t.Logf("error record: %v", errRecords[0])
			if got, want := errRecords[0]["service"], "payment"; got != want {
				t.Errorf("error record: got service %v, want %q", got, want)
			}
		})
	}
}

func TestSetupRejects(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		cfg     Config
		wantErr string
	}{
		{name: "missing service name", cfg: Config{}, wantErr: "service name is required"},
		{name: "negative interval", cfg: Config{ServiceName: "x", ErrorLogInterval: -time.Second}, wantErr: "interval"},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, cfg: Config{ServiceName: "x"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "unknown protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, cfg: Config{ServiceName: "x"}, wantErr: "http/json"},
		{name: "traces protocol overrides", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"}, cfg: Config{ServiceName: "x"}, wantErr: "thrift"},
		{name: "endpoint without a scheme", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, cfg: Config{ServiceName: "x"}, wantErr: `OTEL_EXPORTER_OTLP_ENDPOINT: "127.0.0.1:4318" is not a URL`},
		{name: "endpoint with a host as scheme", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, cfg: Config{ServiceName: "x"}, wantErr: `"localhost:4317" is not a URL`},
		{name: "traces endpoint without a host", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http:///v1/traces"}, cfg: Config{ServiceName: "x"}, wantErr: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearOTelEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			tel, err := Setup(context.Background(), tc.cfg)
			if err == nil {
				_ = tel.Shutdown(context.Background())
				t.Fatalf("got nil error, want one containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %q, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestServiceName(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "from config", want: "order"},
		{name: "OTEL_SERVICE_NAME", env: map[string]string{"OTEL_SERVICE_NAME": "order-canary"}, want: "order-canary"},
		{name: "OTEL_RESOURCE_ATTRIBUTES", env: map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=order-eu,deployment.environment.name=test"}, want: "order-eu"},
		{name: "OTEL_SERVICE_NAME beats OTEL_RESOURCE_ATTRIBUTES", env: map[string]string{
			"OTEL_SERVICE_NAME": "a", "OTEL_RESOURCE_ATTRIBUTES": "service.name=b",
		}, want: "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearOTelEnv(t)
			t.Setenv("OTEL_TRACES_EXPORTER", "none")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			tel, logs := setup(t, Config{ServiceName: "order", ServiceVersion: "1.2.3"})

			v, _ := tel.Resource.Set().Value(semconv.ServiceNameKey)
			if got := v.AsString(); got != tc.want {
				t.Errorf("resource: got service.name %q, want %q", got, tc.want)
			}
			ver, _ := tel.Resource.Set().Value(semconv.ServiceVersionKey)
			if got, want := ver.AsString(), "1.2.3"; got != want {
				t.Errorf("resource: got service.version %q, want %q", got, want)
			}
			tel.Logger.Info("hello")
			recs := logs.Records(t)
			if len(recs) != 1 {
				t.Fatalf("got %d log records, want 1", len(recs))
			}
			if got := recs[0]["service"]; got != tc.want {
				t.Errorf("log: got service %v, want %q", got, tc.want)
			}
		})
	}
}

// Each process of a service is told apart by its service.instance.id, a
// new one per Setup: two replicas, or a service before and after its
// restart, share a name and perhaps a pid.
func TestEachSetupHasItsOwnInstanceID(t *testing.T) {
	clearOTelEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	ids := map[string]bool{}
	for range 2 {
		tel, _ := setup(t, Config{ServiceName: "payment"})
		v, _ := tel.Resource.Set().Value(semconv.ServiceInstanceIDKey)
		if _, err := uuid.Parse(v.AsString()); err != nil {
			t.Errorf("service.instance.id: got %q, want a UUID (%v)", v.AsString(), err)
		}
		ids[v.AsString()] = true
	}
	if len(ids) != 2 {
		t.Errorf("service.instance.id of two set-ups: got %v, want two different ones", ids)
	}
}

func TestLoggerTraceIDs(t *testing.T) {
	clearOTelEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	tel, logs := setup(t, Config{ServiceName: "inventory"})

	ctx, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	sc := span.SpanContext()

	tests := []struct {
		name      string
		log       func()
		wantTrace string
		wantSpan  string
		wantAttr  map[string]any
	}{
		{
			name:      "context with span",
			log:       func() { tel.Logger.InfoContext(ctx, "reserved", "order_id", "o-1") },
			wantTrace: sc.TraceID().String(),
			wantSpan:  sc.SpanID().String(),
			wantAttr:  map[string]any{"order_id": "o-1"},
		},
		{
			name:      "derived logger keeps ids and attributes",
			log:       func() { tel.Logger.With("order_id", "o-2").WarnContext(ctx, "slow", "ms", 12) },
			wantTrace: sc.TraceID().String(),
			wantSpan:  sc.SpanID().String(),
			wantAttr:  map[string]any{"order_id": "o-2", "ms": float64(12)},
		},
		{
			name: "context without span",
			log:  func() { tel.Logger.InfoContext(context.Background(), "idle") },
		},
		{
			name: "no context",
			log:  func() { tel.Logger.Info("idle") },
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.log()
			recs := logs.Records(t)
			if len(recs) != i+1 {
				t.Fatalf("got %d log records, want %d", len(recs), i+1)
			}
			rec := recs[i]
			if got, want := rec["service"], "inventory"; got != want {
				t.Errorf("got service %v, want %q", got, want)
			}
			checkField(t, rec, LogKeyTraceID, tc.wantTrace)
			checkField(t, rec, LogKeySpanID, tc.wantSpan)
			for k, want := range tc.wantAttr {
				if got := rec[k]; got != want {
					t.Errorf("got %s=%v, want %v", k, got, want)
				}
			}
		})
	}
}

// checkField checks a string field; want "" means the field must be absent.
func checkField(t *testing.T, rec map[string]any, key, want string) {
	t.Helper()
	got, ok := rec[key]
	switch {
	case want == "" && ok:
		t.Errorf("got %s=%v, want none", key, got)
	case want != "" && got != want:
		t.Errorf("got %s=%v, want %q", key, got, want)
	}
}

func TestMetricsHandler(t *testing.T) {
	clearOTelEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	tel, _ := setup(t, Config{ServiceName: "shipping"})

	counter, err := tel.MeterProvider.Meter("orderflow/test").Int64Counter("orderflow.shipments.scheduled")
	if err != nil {
		t.Fatalf("counter: %v", err)
	}
	counter.Add(context.Background(), 3)

	srv := httptest.NewServer(tel.MetricsHandler)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("get /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d, want %d", resp.StatusCode, http.StatusOK)
	}

	const metric = "orderflow_shipments_scheduled_total"
	var line string
	for l := range strings.Lines(string(body)) {
		if strings.HasPrefix(l, metric+"{") || strings.HasPrefix(l, metric+" ") {
			line = strings.TrimSpace(l)
		}
	}
	if line == "" {
		t.Fatalf("got no %s sample in:\n%s", metric, body)
	}
	if !strings.HasSuffix(line, " 3") {
		t.Errorf("got sample %q, want value 3", line)
	}
	for _, want := range []string{"go_goroutines", "target_info"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("got no %s in /metrics, want it", want)
		}
	}
}

func TestRateLimitedHandler(t *testing.T) {
	logs := &logtest.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	h := newRateLimitedHandler(logger, time.Minute)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var now time.Time
	h.now = func() time.Time { return now }

	steps := []struct {
		at             time.Duration
		wantLogged     bool
		wantSuppressed float64
	}{
		{at: 0, wantLogged: true},
		{at: time.Second},
		{at: 30 * time.Second},
		{at: 59 * time.Second},
		{at: 61 * time.Second, wantLogged: true, wantSuppressed: 3},
		{at: 62 * time.Second},
		{at: 200 * time.Second, wantLogged: true, wantSuppressed: 1},
		{at: 261 * time.Second, wantLogged: true},
	}
	logged := 0
	for i, s := range steps {
		now = start.Add(s.at)
		h.Handle(fmt.Errorf("export failed %d", i))
		recs := logs.Records(t)
		if s.wantLogged {
			logged++
		}
		if len(recs) != logged {
			t.Fatalf("step %d (t=%v): got %d records, want %d", i, s.at, len(recs), logged)
		}
		if !s.wantLogged {
			continue
		}
		rec := recs[len(recs)-1]
		if got, want := rec["error"], fmt.Sprintf("export failed %d", i); got != want {
			t.Errorf("step %d: got error %v, want %q", i, got, want)
		}
		if got := rec["suppressed"]; got != s.wantSuppressed {
			t.Errorf("step %d: got suppressed %v, want %v", i, got, s.wantSuppressed)
		}
	}
}

func TestQuietExporterSwallowsErrors(t *testing.T) {
	logs := &logtest.Buffer{}
	h := newRateLimitedHandler(slog.New(slog.NewJSONHandler(logs, nil)), time.Minute)
	errDown := errors.New("collector down")
	e := &quietExporter{SpanExporter: failingExporter{err: errDown}, handler: h, abort: context.Background()}

	for range 3 {
		if err := e.ExportSpans(context.Background(), nil); err != nil {
			t.Fatalf("got export error %v, want nil", err)
		}
	}
	recs := logs.Records(t)
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	if got, want := recs[0]["error"], "export 0 spans: collector down"; got != want {
		t.Errorf("got error %v, want %q", got, want)
	}
}

// failingExporter fails every export; with block it first waits for ctx.
type failingExporter struct {
	err   error
	block bool
}

func (e failingExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	if e.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return e.err
}

func (failingExporter) Shutdown(context.Context) error { return nil }

func TestQuietExporterAbort(t *testing.T) {
	h := newRateLimitedHandler(slog.New(slog.NewJSONHandler(io.Discard, nil)), time.Minute)
	abort, cancel := context.WithCancel(context.Background())
	e := &quietExporter{SpanExporter: failingExporter{block: true}, handler: h, abort: abort}

	done := make(chan error, 1)
	go func() { done <- e.ExportSpans(context.Background(), nil) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("got export error %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("export still running 5s after abort, want it cancelled")
	}
}
