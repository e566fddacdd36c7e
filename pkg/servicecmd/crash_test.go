package servicecmd_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicehost"
)

// envCrashChild, set to "1", makes TestCrashPointExportsTheSpansFinishedBeforeIt
// the crashing service instead of the test that runs it.
const envCrashChild = "SERVICECMD_TEST_CRASH_CHILD"

// finishedSpan is the span the crashing service ends before its crash.
const finishedSpan = "work finished before the crash"

// spanReceiver is an OTLP/HTTP trace receiver that keeps the names of the
// spans it gets.
type spanReceiver struct {
	mu    sync.Mutex
	names []string
}

func (r *spanReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	var export coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &export)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range export.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.names = append(r.names, s.GetName())
			}
		}
	}
	r.mu.Unlock()
	resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

func (r *spanReceiver) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.names)
}

// A crash point exits the process, but not before the spans it finished
// are exported: with the batch processor's schedule far off, a crash
// otherwise lost every span of the last seconds, of every order. The
// service runs in a process of its own (this test binary again), started
// by Run as a service's main starts it, with its OTLP endpoint here.
func TestCrashPointExportsTheSpansFinishedBeforeIt(t *testing.T) {
	if os.Getenv(envCrashChild) == "1" {
		crashingService(t)
		return
	}
	recv := &spanReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashPointExportsTheSpansFinishedBeforeIt$")
	cmd.Env = append(os.Environ(),
		envCrashChild+"=1",
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+srv.URL,
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=",
		"OTEL_BSP_SCHEDULE_DELAY=600000", // no export but a flush's
		"PAYMENT_CRASH_AFTER_COMMIT=true",
	)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != faults.ExitCode {
		t.Fatalf("service: got %v, want exit status %d; output:\n%s", err, faults.ExitCode, out)
	}
	if got := recv.received(); !slices.Contains(got, finishedSpan) {
		t.Errorf("spans received: got %q, want %q among them; service output:\n%s", got, finishedSpan, out)
	}
}

// crashingService runs a payment service whose Open ends a span and then
// reaches the crash_after_commit crash point, switched on by the
// environment.
func crashingService(t *testing.T) {
	c := command
	c.Open = func(ctx context.Context, cfg servicehost.Config) (*servicehost.Host, error) {
		_, span := cfg.TracerProvider.Tracer("test").Start(ctx, finishedSpan)
		span.End()
		cfg.Faults.CrashPoint(ctx, faults.CrashAfterCommit)
		return nil, errors.New("the crash point did not exit")
	}
	// Open creates nothing: no data directory (a temporary one would be
	// left behind by the exit).
	err := c.Run(context.Background(), []string{"--http-addr", "127.0.0.1:0"}, os.LookupEnv, os.Stderr)
	t.Fatalf("Run: got %v, want the process to exit at the crash point", err)
}
