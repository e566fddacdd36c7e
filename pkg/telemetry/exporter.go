package telemetry

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Environment variables read by Setup itself; the exporters read the rest.
const (
	envTracesExporter      = "OTEL_TRACES_EXPORTER"
	envOTLPProtocol        = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envOTLPTracesProtocol  = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	protocolHTTPProtobuf   = "http/protobuf"
	protocolGRPC           = "grpc"
	tracesExporterOTLP     = "otlp"
	tracesExporterDisabled = "none"
)

// newSpanExporter returns the exporter selected by OTEL_TRACES_EXPORTER and
// the OTLP protocol variables, or nil when exporting is disabled. Neither
// exporter dials on creation.
func newSpanExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	switch name := strings.ToLower(strings.TrimSpace(os.Getenv(envTracesExporter))); name {
	case "", tracesExporterOTLP:
	case tracesExporterDisabled:
		return nil, nil
	default:
		return nil, fmt.Errorf("%s=%q is not supported (want %q or %q)",
			envTracesExporter, name, tracesExporterOTLP, tracesExporterDisabled)
	}

	protocol := strings.TrimSpace(os.Getenv(envOTLPTracesProtocol))
	if protocol == "" {
		protocol = strings.TrimSpace(os.Getenv(envOTLPProtocol))
	}
	switch protocol {
	case "", protocolHTTPProtobuf:
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp http trace exporter: %w", err)
		}
		return exp, nil
	case protocolGRPC:
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp grpc trace exporter: %w", err)
		}
		return exp, nil
	default:
		return nil, fmt.Errorf("OTLP protocol %q is not supported (want %q or %q)",
			protocol, protocolHTTPProtobuf, protocolGRPC)
	}
}

// quietExporter reports export failures to its own error handler instead of
// returning them to the batch span processor, which would hand every failed
// batch to otel's global error handler (by default one log line per batch).
// It also cancels exports in flight once abort is done, which bounds how
// long the processor's final flush can outlive Telemetry.Shutdown.
type quietExporter struct {
	sdktrace.SpanExporter
	handler otel.ErrorHandler
	abort   context.Context
}

// ExportSpans implements sdktrace.SpanExporter. It always returns nil; the
// spans of a failed export are dropped, as the batch processor would do.
func (e *quietExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(e.abort, cancel)
	defer stop()

	if err := e.SpanExporter.ExportSpans(ctx, spans); err != nil {
		e.handler.Handle(fmt.Errorf("export %d spans: %w", len(spans), err))
	}
	return nil
}
