package telemetry

import (
	"context"
	"fmt"
	"net/url"
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
	envOTLPEndpoint        = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envOTLPTracesEndpoint  = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
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

	// The exporters log a malformed endpoint once and fall back to their
	// default one (localhost): spans would go elsewhere without a word.
	for _, env := range []string{envOTLPTracesEndpoint, envOTLPEndpoint} {
		if err := checkEndpoint(os.Getenv(env)); err != nil {
			return nil, fmt.Errorf("%s: %w", env, err)
		}
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

// checkEndpoint reports an OTLP endpoint that is set but not a URL with an
// http or https scheme and a host, as the OpenTelemetry specification
// requires for both protocols.
func checkEndpoint(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not a URL with an http:// or https:// scheme and a host (e.g. http://127.0.0.1:4318)", v)
	}
	return nil
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
